//! Reading one project (or folder, or organization): service accounts, their keys, each
//! account's own IAM policy (who may act as it), the container's IAM policy at version 3, and
//! last authentication from Policy Analyzer.
//!
//! Requests per project: ⌈accounts/100⌉ service-account pages, one key list per account (the
//! keys API is not paginated and has no bulk form), one `getIamPolicy` per account (IAM has no
//! bulk read of account policies either), one project `getIamPolicy`, and one paged Policy
//! Analyzer query per activity type (never per key): ⌈accounts/100⌉ + 2 × accounts + 3 when
//! every answer fits one page. Folders and organizations: one `getIamPolicy` each.

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt;
use lapse_sdk::{
    Cloud, Condition, Credential, CredentialKind, CredentialStatus, ExpirySource, Grant, GrantKind,
    Principal, PrincipalId, PrincipalKind, ScopeError, ScopeKind, ScopeStatus, Snapshot, Timestamp,
    Usage, Via,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::GcpSettings;
use crate::client::{CallError, Client};
use crate::error::{GcpError, Method};
use crate::policy::{self, Policy};

/// Service accounts read per page (the API's maximum).
const ACCOUNT_PAGE: &str = "100";
/// Activities read per Policy Analyzer page (the API's maximum).
const ACTIVITY_PAGE: &str = "1000";
/// IAM calls per account (key list, then the account's policy) in flight at once within a
/// project: IAM allows 6,000 reads per project per minute, and two reads per account would
/// reach it on a large project if each account ran its own in parallel.
const ACCOUNT_READS_AT_ONCE: usize = 8;

pub(crate) const LIST_ACCOUNTS: Method = Method {
    name: "iam.projects.serviceAccounts.list",
    permission: "iam.serviceAccounts.list",
    reads: true,
};
pub(crate) const LIST_KEYS: Method = Method {
    name: "iam.projects.serviceAccounts.keys.list",
    permission: "iam.serviceAccountKeys.list",
    reads: true,
};
pub(crate) const GET_ACCOUNT_POLICY: Method = Method {
    name: "iam.projects.serviceAccounts.getIamPolicy",
    permission: "iam.serviceAccounts.getIamPolicy",
    reads: true,
};
pub(crate) const SET_ACCOUNT_POLICY: Method = Method {
    name: "iam.projects.serviceAccounts.setIamPolicy",
    permission: "iam.serviceAccounts.setIamPolicy",
    reads: false,
};
const KEY_ACTIVITY: Method = Method {
    name: "policyanalyzer.projects.locations.activityTypes.activities.query(serviceAccountKeyLastAuthentication)",
    permission: "policyanalyzer.serviceAccountKeyLastAuthenticationActivities.query",
    reads: true,
};
const ACCOUNT_ACTIVITY: Method = Method {
    name: "policyanalyzer.projects.locations.activityTypes.activities.query(serviceAccountLastAuthentication)",
    permission: "policyanalyzer.serviceAccountLastAuthenticationActivities.query",
    reads: true,
};

/// A container whose IAM policy lapse reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Container {
    /// A project.
    Project,
    /// A folder.
    Folder,
    /// An organization.
    Organization,
}

impl Container {
    /// The resource name prefix (`projects`).
    pub(crate) fn collection(self) -> &'static str {
        match self {
            Container::Project => "projects",
            Container::Folder => "folders",
            Container::Organization => "organizations",
        }
    }

    fn scope_kind(self) -> ScopeKind {
        match self {
            Container::Project => ScopeKind::Project,
            Container::Folder => ScopeKind::Folder,
            Container::Organization => ScopeKind::Organization,
        }
    }

    /// The container a resource name (`folders/123`) names.
    pub(crate) fn of(resource: &str) -> Option<(Container, &str)> {
        let (collection, id) = resource.split_once('/')?;
        let container = match collection {
            "projects" => Container::Project,
            "folders" => Container::Folder,
            "organizations" => Container::Organization,
            _ => return None,
        };
        let explicit = match container {
            Container::Project => is_project_id(id),
            Container::Folder | Container::Organization => is_numeric_id(id),
        };
        explicit.then_some((container, id))
    }

    /// `getIamPolicy` on this kind of container.
    pub(crate) fn get_policy(self) -> Method {
        match self {
            Container::Project => Method {
                name: "cloudresourcemanager.projects.getIamPolicy",
                permission: "resourcemanager.projects.getIamPolicy",
                reads: true,
            },
            Container::Folder => Method {
                name: "cloudresourcemanager.folders.getIamPolicy",
                permission: "resourcemanager.folders.getIamPolicy",
                reads: true,
            },
            Container::Organization => Method {
                name: "cloudresourcemanager.organizations.getIamPolicy",
                permission: "resourcemanager.organizations.getIamPolicy",
                reads: true,
            },
        }
    }

    /// `setIamPolicy` on this kind of container.
    pub(crate) fn set_policy(self) -> Method {
        match self {
            Container::Project => Method {
                name: "cloudresourcemanager.projects.setIamPolicy",
                permission: "resourcemanager.projects.setIamPolicy",
                reads: false,
            },
            Container::Folder => Method {
                name: "cloudresourcemanager.folders.setIamPolicy",
                permission: "resourcemanager.folders.setIamPolicy",
                reads: false,
            },
            Container::Organization => Method {
                name: "cloudresourcemanager.organizations.setIamPolicy",
                permission: "resourcemanager.organizations.setIamPolicy",
                reads: false,
            },
        }
    }
}

/// A resource with an IAM policy of its own that lapse reads and edits: a container, or a
/// service account (whose policy says who may act as it). The endpoint, the methods and how
/// version 3 is asked for follow from the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolicyHolder {
    /// A project, folder or organization (Resource Manager v3).
    Container(Container),
    /// `projects/<id>/serviceAccounts/<email>` (IAM v1).
    ServiceAccount,
}

impl PolicyHolder {
    /// The kind of resource a name (`folders/123`, `projects/p/serviceAccounts/a@p.iam…`)
    /// names, every segment checked: `None` for anything a URL could read as another object.
    pub(crate) fn of(resource: &str) -> Option<PolicyHolder> {
        if let Some((container, _)) = Container::of(resource) {
            return Some(PolicyHolder::Container(container));
        }
        let parts: Vec<&str> = resource.split('/').collect();
        let account = parts.len() == 4
            && parts[0] == "projects"
            && is_project_id(parts[1])
            && parts[2] == "serviceAccounts"
            && is_account_email(parts[3]);
        account.then_some(PolicyHolder::ServiceAccount)
    }

    /// `getIamPolicy` on this kind of resource.
    pub(crate) fn get_policy(self) -> Method {
        match self {
            PolicyHolder::Container(container) => container.get_policy(),
            PolicyHolder::ServiceAccount => GET_ACCOUNT_POLICY,
        }
    }

    /// `setIamPolicy` on this kind of resource.
    pub(crate) fn set_policy(self) -> Method {
        match self {
            PolicyHolder::Container(container) => container.set_policy(),
            PolicyHolder::ServiceAccount => SET_ACCOUNT_POLICY,
        }
    }

    /// `<API>/<version>/<resource>:<verb>` (`getIamPolicy`, `setIamPolicy`).
    pub(crate) fn url(self, settings: &GcpSettings, resource: &str, verb: &str) -> String {
        match self {
            PolicyHolder::Container(_) => format!(
                "{}/v3/{resource}:{verb}",
                settings.resource_manager_url.trim_end_matches('/')
            ),
            PolicyHolder::ServiceAccount => format!(
                "{}/v1/{resource}:{verb}",
                settings.iam_url.trim_end_matches('/')
            ),
        }
    }

    /// How `getIamPolicy` asks for version 3: Resource Manager v3 takes `options` in the body;
    /// IAM v1 documents `options.requestedPolicyVersion` as a query parameter and an empty
    /// body for service accounts.
    pub(crate) fn version_3(self) -> (&'static [(&'static str, &'static str)], Option<Value>) {
        match self {
            PolicyHolder::Container(_) => {
                (&[], Some(json!({"options": {"requestedPolicyVersion": 3}})))
            }
            PolicyHolder::ServiceAccount => (&[("options.requestedPolicyVersion", "3")], None),
        }
    }
}

/// An explicit project id or number (`acme-prod`, a legacy `example.com:acme`): lowercase
/// letters, digits, `-`, and the `.`/`:` of a domain-scoped id. Never the `-` wildcard, a dot
/// segment, or a character a URL reads as a separator, query, fragment or escape: such an id
/// would send the request to another object than the one named.
pub(crate) fn is_project_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'))
        && !id.contains("..")
}

/// A folder or organization id: digits only.
pub(crate) fn is_numeric_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

/// A service-account email as one path segment: `local@domain`, with nothing a URL reads as
/// a separator, query, fragment, escape or custom verb (`:`).
pub(crate) fn is_account_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let plain = |text: &str, extra: &[char]| {
        !text.is_empty()
            && !text.starts_with('.')
            && !text.contains("..")
            && text.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') || extra.contains(&c)
            })
    };
    plain(local, &['+']) && plain(domain, &[]) && domain.contains('.')
}

/// A key id (the last segment of a key's name): letters and digits only (40 hex digits).
pub(crate) fn is_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A service account as `serviceAccounts.list` returns it
/// (<https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts#ServiceAccount>).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceAccount {
    /// Required: an account without one cannot be named, so the answer is not whole.
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) unique_id: String,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    /// Omitted when false (proto3 JSON).
    #[serde(default)]
    pub(crate) disabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountPage {
    #[serde(default)]
    accounts: Vec<ServiceAccount>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A key as `keys.list` returns it
/// (<https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts.keys#ServiceAccountKey>).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Key {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) key_type: Option<String>,
    #[serde(default)]
    pub(crate) valid_after_time: Option<String>,
    #[serde(default)]
    pub(crate) valid_before_time: Option<String>,
    /// Omitted when false (proto3 JSON).
    #[serde(default)]
    pub(crate) disabled: bool,
}

impl Key {
    pub(crate) fn is_system_managed(&self) -> bool {
        self.key_type.as_deref() == Some("SYSTEM_MANAGED")
    }

    /// `validBeforeTime`, unless it is the 9999-12-31 "no expiry" marker.
    fn expires_at(&self) -> Option<Timestamp> {
        let before = Timestamp::parse_rfc3339(self.valid_before_time.as_deref()?).ok()?;
        (before.as_offset().year() < 9999).then_some(before)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct KeyList {
    #[serde(default)]
    pub(crate) keys: Vec<Key>,
}

/// The key list of one account.
pub(crate) async fn list_keys(
    client: &Client,
    iam_url: &str,
    account_name: &str,
) -> Result<Vec<Key>, CallError> {
    let url = format!("{iam_url}/v1/{account_name}/keys");
    client
        .call::<KeyList>(LIST_KEYS, reqwest::Method::GET, &url, &[], None)
        .await
        .map(|list| list.keys)
}

/// Reads a container's or service account's IAM policy at version 3; an answer that cannot
/// stand for the live policy (no etag, flattened to version 1) is an error.
pub(crate) async fn get_policy(
    client: &Client,
    settings: &GcpSettings,
    holder: PolicyHolder,
    resource: &str,
) -> Result<Policy, CallError> {
    let url = holder.url(settings, resource, "getIamPolicy");
    let (query, body) = holder.version_3();
    let policy: Policy = client
        .call(
            holder.get_policy(),
            reqwest::Method::POST,
            &url,
            query,
            body.as_ref(),
        )
        .await?;
    match policy.unusable() {
        None => Ok(policy),
        Some(problem) => Err(CallError::Local(GcpError::Malformed {
            operation: holder.get_policy().name.to_owned(),
            message: problem,
        })),
    }
}

/// Everything read from one container.
struct Reading {
    scope: ScopeStatus,
    principals: BTreeMap<String, (Principal, bool)>,
    credentials: Vec<Credential>,
    grants: Vec<Grant>,
}

impl Reading {
    fn fail(&mut self, method: Method, error: CallError) {
        self.scope.complete = false;
        // After a timeout the rest of the read is not asked; the timeout already says why.
        if error.is_abandoned() && !self.scope.errors.is_empty() {
            return;
        }
        let error = error.into_provider_error(method);
        self.scope.errors.push(ScopeError {
            operation: error.operation,
            message: error.message,
            missing_permission: error.missing_permission,
        });
    }

    /// Adds a principal; a record from the account list (`full`) wins over one made from a
    /// binding member.
    fn principal(&mut self, principal: Principal, full: bool) {
        match self.principals.get(principal.id.as_str()) {
            Some((_, true)) => {}
            _ => {
                self.principals
                    .insert(principal.id.0.clone(), (principal, full));
            }
        }
    }
}

/// Reads one container into a snapshot. Every failed read is recorded on the scope.
pub(crate) async fn scan(
    client: &Client,
    settings: &GcpSettings,
    container: Container,
    id: &str,
) -> (Snapshot, Vec<(String, bool)>) {
    let resource = format!("{}/{id}", container.collection());
    let scope_id = format!("gcp:{resource}");
    let taken_at = Timestamp::from_offset(time::OffsetDateTime::now_utc());
    let mut reading = Reading {
        scope: ScopeStatus {
            caller_identities: client.caller_identities().await,
            id: scope_id.clone().into(),
            cloud: Cloud::Gcp,
            kind: container.scope_kind(),
            taken_at,
            complete: true,
            caller: client.caller().await,
            errors: Vec::new(),
        },
        principals: BTreeMap::new(),
        credentials: Vec::new(),
        grants: Vec::new(),
    };
    if container == Container::Project {
        scan_accounts(client, settings, id, &mut reading).await;
    }
    let holder = PolicyHolder::Container(container);
    match get_policy(client, settings, holder, &resource).await {
        Ok(policy) => read_policy(&policy, &resource, &mut reading),
        Err(error) => reading.fail(holder.get_policy(), error),
    }
    let mut snapshot = Snapshot::empty(taken_at);
    let fullness = reading
        .principals
        .values()
        .map(|(principal, full)| (principal.id.0.clone(), *full))
        .collect();
    snapshot.principals = reading
        .principals
        .into_values()
        .map(|(principal, _)| principal)
        .collect();
    snapshot.credentials = reading.credentials;
    snapshot.grants = reading.grants;
    snapshot.scopes = vec![reading.scope];
    (snapshot, fullness)
}

async fn scan_accounts(
    client: &Client,
    settings: &GcpSettings,
    project: &str,
    reading: &mut Reading,
) {
    let iam_url = settings.iam_url.trim_end_matches('/');
    let mut accounts = Vec::new();
    let mut token: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        let url = format!("{iam_url}/v1/projects/{project}/serviceAccounts");
        let mut query = vec![("pageSize", ACCOUNT_PAGE)];
        if let Some(token) = token.as_deref() {
            query.push(("pageToken", token));
        }
        match client
            .call::<AccountPage>(LIST_ACCOUNTS, reqwest::Method::GET, &url, &query, None)
            .await
        {
            Ok(page) => {
                for account in page.accounts {
                    // An email lapse cannot put in a URL as one segment would read (or later
                    // act on) another object than the account listed.
                    if is_account_email(&account.email) {
                        accounts.push(account);
                    } else {
                        let message = format!(
                            "a listed account's email `{}` is not one lapse can name in a request",
                            account.email
                        );
                        reading.fail(
                            LIST_ACCOUNTS,
                            CallError::Local(GcpError::Malformed {
                                operation: LIST_ACCOUNTS.name.to_owned(),
                                message,
                            }),
                        );
                    }
                }
                match page.next_page_token.filter(|token| !token.is_empty()) {
                    Some(next) => {
                        if let Err(error) = next_page(&mut seen, &next, LIST_ACCOUNTS) {
                            reading.fail(LIST_ACCOUNTS, error);
                            break;
                        }
                        token = Some(next);
                    }
                    None => break,
                }
            }
            Err(error) => {
                reading.fail(LIST_ACCOUNTS, error);
                break;
            }
        }
    }
    let key_activity = activities(
        client,
        settings,
        project,
        "serviceAccountKeyLastAuthentication",
        KEY_ACTIVITY,
    )
    .await;
    let account_activity = activities(
        client,
        settings,
        project,
        "serviceAccountLastAuthentication",
        ACCOUNT_ACTIVITY,
    )
    .await;
    let key_activity = match key_activity {
        Ok(found) => found,
        Err(error) => {
            reading.fail(KEY_ACTIVITY, error);
            None
        }
    };
    let account_activity = match account_activity {
        Ok(found) => found,
        Err(error) => {
            reading.fail(ACCOUNT_ACTIVITY, error);
            None
        }
    };
    let scope = reading.scope.id.clone();
    let taken_at = reading.scope.taken_at;
    // One account's two reads run one after the other, so at most ACCOUNT_READS_AT_ONCE IAM
    // calls are in flight.
    let lists: Vec<AccountReads> =
        futures_util::stream::iter(accounts.into_iter().map(|account| async move {
            let name = format!("projects/{project}/serviceAccounts/{}", account.email);
            let keys = list_keys(client, iam_url, &name).await;
            let policy = get_policy(client, settings, PolicyHolder::ServiceAccount, &name).await;
            (account, name, keys, policy)
        }))
        .buffered(ACCOUNT_READS_AT_ONCE)
        .collect()
        .await;
    for (account, name, keys, policy) in lists {
        let principal_id = format!("serviceAccount:{}", account.email);
        let last_activity = account_activity.as_ref().map_or(Usage::Unknown, |found| {
            found.usage(&[&account.email, &account.unique_id])
        });
        reading.principal(
            Principal {
                // Google's immutable id: an account deleted and re-created under the same
                // email gets a new one.
                unique_id: Some(account.unique_id.clone()).filter(|unique| !unique.is_empty()),
                id: principal_id.clone().into(),
                cloud: Cloud::Gcp,
                scope: scope.clone(),
                kind: PrincipalKind::Workload,
                native_type: Some("serviceAccount".to_owned()),
                display_name: account.display_name.clone().filter(|name| !name.is_empty()),
                // The IAM API gives service accounts no creation time.
                created_at: None,
                last_activity,
                owner: None,
                tags: BTreeMap::new(),
                enabled: !account.disabled,
                cloud_managed: policy::is_service_agent(&account.email),
                federation_available: false,
            },
            true,
        );
        // Who may act as the account: grants on the account itself, like any binding.
        match policy {
            Ok(policy) => {
                read_policy(&policy, &name, reading);
                if policy::federates(&policy, taken_at)
                    && let Some((principal, _)) = reading.principals.get_mut(&principal_id)
                {
                    principal.federation_available = true;
                }
            }
            Err(error) => reading.fail(GET_ACCOUNT_POLICY, error),
        }
        let keys = match keys {
            Ok(keys) => keys,
            // A 404 too: IAM reads are eventually consistent, so "not found" for an account
            // just listed is no proof that it has no keys.
            Err(error) => {
                reading.fail(LIST_KEYS, error);
                continue;
            }
        };
        for key in keys {
            let created_at = key
                .valid_after_time
                .as_deref()
                .and_then(|text| Timestamp::parse_rfc3339(text).ok());
            let key_id = key.name.rsplit('/').next().unwrap_or_default().to_owned();
            let last_used = key_activity
                .as_ref()
                .map_or(Usage::Unknown, |found| found.usage(&[&key_id]));
            reading.credentials.push(Credential {
                id: key.name.clone().into(),
                principal: PrincipalId(principal_id.clone()),
                cloud: Cloud::Gcp,
                scope: scope.clone(),
                kind: CredentialKind::GcpSaKey,
                display_name: None,
                created_at,
                expires_at: key.expires_at(),
                last_used,
                status: if key.disabled {
                    CredentialStatus::Inactive
                } else {
                    CredentialStatus::Active
                },
                cloud_managed: key.is_system_managed(),
            });
        }
    }
}

/// One account as listed, its resource name, its key list and its own IAM policy.
type AccountReads = (
    ServiceAccount,
    String,
    Result<Vec<Key>, CallError>,
    Result<Policy, CallError>,
);

/// Records a page token; a token that came back before means the pager would never end.
fn next_page(
    seen: &mut std::collections::HashSet<String>,
    token: &str,
    method: Method,
) -> Result<(), CallError> {
    if seen.insert(token.to_owned()) {
        Ok(())
    } else {
        Err(CallError::Local(GcpError::Malformed {
            operation: method.name.to_owned(),
            message: "a page token came back a second time, so the list would never end".to_owned(),
        }))
    }
}

/// Policy Analyzer's answer for one activity type in one project.
pub(crate) struct Activities {
    /// Last authentication by the last segment of the resource name (key id, account email or
    /// unique id).
    last: HashMap<String, Timestamp>,
}

impl Activities {
    /// Last use of the object known by any of `names`; unknown when the answer does not name
    /// it. The analyzer lists only what did authenticate, and each record's observation period
    /// is that record's own, so absence never says "never used".
    pub(crate) fn usage(&self, names: &[&str]) -> Usage {
        names
            .iter()
            .filter(|name| !name.is_empty())
            .filter_map(|name| self.last.get(*name))
            .max()
            .map_or(Usage::Unknown, |at| Usage::At(*at))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityPage {
    #[serde(default)]
    activities: Vec<Value>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// Reads every page of one activity type. `Ok(None)` when the API is not enabled or the caller
/// may not read it (403, 404): last use is then unknown, and the scope stays complete.
async fn activities(
    client: &Client,
    settings: &GcpSettings,
    project: &str,
    activity_type: &str,
    method: Method,
) -> Result<Option<Activities>, CallError> {
    let url = format!(
        "{}/v1/projects/{project}/locations/global/activityTypes/{activity_type}/activities:query",
        settings.policy_analyzer_url.trim_end_matches('/')
    );
    let mut found = Activities {
        last: HashMap::new(),
    };
    let mut token: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        let mut query = vec![("pageSize", ACTIVITY_PAGE)];
        if let Some(token) = token.as_deref() {
            query.push(("pageToken", token));
        }
        let page = match client
            .call::<ActivityPage>(method, reqwest::Method::GET, &url, &query, None)
            .await
        {
            Ok(page) => page,
            Err(error) if matches!(error.status(), Some(403 | 404)) => return Ok(None),
            Err(error) => return Err(error),
        };
        for activity in &page.activities {
            let time = |value: &Value| {
                value
                    .as_str()
                    .and_then(|text| Timestamp::parse_rfc3339(text).ok())
            };
            let Some(last) = time(&activity["activity"]["lastAuthenticatedTime"]) else {
                continue;
            };
            let mut names = Vec::new();
            if let Some(name) = activity["fullResourceName"].as_str() {
                names.push(name.rsplit('/').next().unwrap_or(name).to_owned());
            }
            for inner in ["serviceAccount", "serviceAccountKey"] {
                if let Some(name) = activity["activity"][inner]["fullResourceName"].as_str() {
                    names.push(name.rsplit('/').next().unwrap_or(name).to_owned());
                }
            }
            if let Some(unique) =
                activity["activity"]["serviceAccount"]["serviceAccountId"].as_str()
            {
                names.push(unique.to_owned());
            }
            for name in names {
                let entry = found.last.entry(name).or_insert(last);
                *entry = (*entry).max(last);
            }
        }
        match page.next_page_token.filter(|token| !token.is_empty()) {
            Some(next) => {
                next_page(&mut seen, &next, method)?;
                token = Some(next);
            }
            None => return Ok(Some(found)),
        }
    }
}

/// Turns a policy into grants, and its members into principals.
fn read_policy(policy: &Policy, resource: &str, reading: &mut Reading) {
    let scope = reading.scope.id.clone();
    let mut seen = std::collections::HashSet::new();
    for binding in &policy.bindings {
        for member_text in &binding.members {
            let id = policy::grant_id(policy, resource, binding, member_text);
            if !seen.insert(id.clone()) {
                continue;
            }
            let member = policy::member(member_text);
            reading.principal(
                Principal {
                    unique_id: None,
                    id: member_text.clone().into(),
                    cloud: Cloud::Gcp,
                    scope: scope.clone(),
                    kind: member.kind,
                    native_type: Some(member.native_type.clone()),
                    display_name: Some(member.name.clone()),
                    created_at: None,
                    last_activity: Usage::Unknown,
                    owner: None,
                    tags: BTreeMap::new(),
                    enabled: true,
                    cloud_managed: member.cloud_managed,
                    federation_available: false,
                },
                false,
            );
            let condition = binding.condition.as_ref();
            let expires_at =
                condition.and_then(|condition| policy::condition_expiry(&condition.expression));
            reading.grants.push(Grant {
                id: id.into(),
                cloud: Cloud::Gcp,
                scope: scope.clone(),
                principal: member_text.clone().into(),
                entitlement: binding.role.clone(),
                entitlement_id: None,
                resource: resource.to_owned(),
                kind: GrantKind::IamBinding,
                via: Via::Direct,
                created_at: None,
                expires_at,
                expiry_source: expires_at.map(|_| ExpirySource::Condition),
                condition: condition.map(|condition| Condition {
                    expression: condition.expression.clone(),
                    title: condition.title().map(str::to_owned),
                }),
                // Roles are judged by the engine's catalog; custom roles' contents are not read.
                privileged: false,
            });
        }
    }
}
