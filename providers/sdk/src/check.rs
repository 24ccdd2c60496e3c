//! Whether a record can belong to the scope it claims. A provider writes a record only under
//! the scope it read it from, so a file whose records reach outside their scopes (another
//! account's ARN under this account, a Google grant on another project, a role assignment in
//! another subscription, a credential of another account's user) was edited or forged: it is
//! refused where it is read, before any guard or provider sees it.
//!
//! The rules follow each cloud's ids:
//! - AWS: scope `aws:<12 digits>`; principals and credential owners are IAM ARNs of that
//!   account; a grant's resource is the account; a managed policy is AWS's or the account's; a
//!   role trust names a role of the account (the trusted principal may be anywhere).
//! - Azure: scopes `azure:/tenants/<id>` and `azure:/subscriptions/<id>`; a grant's id and
//!   resource name no other subscription, and a grant placed outside its subscription is
//!   inherited (management group or root); role assignments live in subscriptions, directory
//!   roles and application permissions in tenants.
//! - Google Cloud: scopes `gcp:projects/<id>`, `gcp:folders/<id>`, `gcp:organizations/<id>`; a
//!   grant's resource is the container or inside it; a key is named under its project and its
//!   service account. Principals may be of any project: a binding may name them.
//!
//! Everywhere: the record's cloud is its scope's, its kind is one that cloud has, and a creation
//! or last-use time is not later than the scope was read (a day of clock skew allowed).

use std::collections::HashMap;

use crate::json_position::JsonPath;
use crate::{
    Cloud, Credential, CredentialKind, Grant, GrantKind, Principal, ScopeId, ScopeKind,
    ScopeStatus, Snapshot, Timestamp, Usage, Via,
};

/// Clock skew tolerated between a cloud's timestamps and the time lapse read the scope.
const CLOCK_SKEW_SECONDS: i64 = 86_400;

/// A scope id taken apart: its cloud, its kind, and the container's own id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeShape {
    /// The cloud the prefix names.
    pub cloud: Cloud,
    /// The kind of container.
    pub kind: ScopeKind,
    /// The account id, tenant id, subscription id, or Google resource name
    /// (`projects/acme-prod`).
    pub name: String,
    /// When the scope was read, when known: no record was created or used after it.
    pub read_at: Option<Timestamp>,
}

impl ScopeShape {
    /// Parses `aws:<account>`, `azure:/tenants/<id>`, `azure:/subscriptions/<id>`,
    /// `gcp:projects/<id>`, `gcp:folders/<id>` or `gcp:organizations/<id>`.
    ///
    /// # Errors
    /// A sentence saying what the id should look like.
    pub fn parse(id: &ScopeId) -> Result<Self, String> {
        let text = id.as_str();
        let plain = |value: &str| {
            !value.is_empty()
                && value
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
        };
        let shape = if let Some(account) = text.strip_prefix("aws:") {
            (account.len() == 12 && account.bytes().all(|byte| byte.is_ascii_digit())).then(|| {
                ScopeShape {
                    cloud: Cloud::Aws,
                    kind: ScopeKind::Account,
                    name: account.to_owned(),
                    read_at: None,
                }
            })
        } else if let Some(rest) = text.strip_prefix("azure:/") {
            match rest.split_once('/') {
                Some(("tenants", tenant)) if plain(tenant) => Some(ScopeShape {
                    cloud: Cloud::Azure,
                    kind: ScopeKind::Tenant,
                    name: tenant.to_owned(),
                    read_at: None,
                }),
                Some(("subscriptions", subscription)) if plain(subscription) => Some(ScopeShape {
                    cloud: Cloud::Azure,
                    kind: ScopeKind::Subscription,
                    name: subscription.to_owned(),
                    read_at: None,
                }),
                _ => None,
            }
        } else if let Some(rest) = text.strip_prefix("gcp:") {
            let kind = match rest.split_once('/') {
                Some(("projects", id)) if plain(id) => Some(ScopeKind::Project),
                Some(("folders", id)) if plain(id) => Some(ScopeKind::Folder),
                Some(("organizations", id)) if plain(id) => Some(ScopeKind::Organization),
                _ => None,
            };
            kind.map(|kind| ScopeShape {
                cloud: Cloud::Gcp,
                kind,
                name: rest.to_owned(),
                read_at: None,
            })
        } else {
            None
        };
        shape.ok_or_else(|| {
            format!(
                "scope id `{text}` is none of aws:<12-digit account>, azure:/tenants/<id>, azure:/subscriptions/<id>, gcp:projects/<id>, gcp:folders/<id>, gcp:organizations/<id>"
            )
        })
    }

    /// Checks a scope's own `cloud` and `kind` against its id.
    ///
    /// # Errors
    /// What disagrees.
    pub fn check_status(&self, status: &ScopeStatus) -> Result<(), String> {
        if status.cloud != self.cloud {
            return Err(format!(
                "scope {} is an {} scope but says `cloud: {}`",
                status.id, self.cloud, status.cloud
            ));
        }
        if status.kind != self.kind {
            return Err(format!(
                "scope {} is a {} but says `kind: {}`",
                status.id,
                kind_name(self.kind),
                kind_name(status.kind)
            ));
        }
        Ok(())
    }

    /// Checks that a principal can have been read in this scope.
    ///
    /// # Errors
    /// Why it cannot.
    pub fn check_principal(&self, principal: &Principal) -> Result<(), String> {
        self.check_cloud(principal.cloud)?;
        if self.cloud == Cloud::Aws {
            self.aws_in_account("principal", principal.id.as_str())?;
        }
        if let Some(created_at) = principal.created_at {
            self.not_after("created_at", created_at)?;
        }
        Ok(())
    }

    /// Checks that a credential can have been read in this scope.
    ///
    /// # Errors
    /// Why it cannot.
    pub fn check_credential(&self, credential: &Credential) -> Result<(), String> {
        self.check_cloud(credential.cloud)?;
        let kind_cloud = credential_cloud(credential.kind);
        if kind_cloud != self.cloud {
            return Err(format!(
                "a {} credential belongs to {kind_cloud}, not to the {} scope {}",
                credential.kind,
                self.cloud,
                self.id()
            ));
        }
        match self.cloud {
            Cloud::Aws => {
                self.aws_in_account("principal", credential.principal.as_str())?;
                if credential.id.as_str().starts_with("arn:") {
                    self.aws_in_account("id", credential.id.as_str())?;
                }
            }
            // Entra credentials belong to the tenant, but may be filed under a subscription its
            // applications serve; either way they are acted on in the tenant.
            Cloud::Azure => {}
            Cloud::Gcp => self.gcp_key(credential)?,
        }
        if let Some(created_at) = credential.created_at {
            self.not_after("created_at", created_at)?;
        }
        if let Usage::At(used) = credential.last_used {
            self.not_after("last_used", used)?;
        }
        Ok(())
    }

    /// Checks that a grant can have been read in this scope.
    ///
    /// # Errors
    /// Why it cannot.
    pub fn check_grant(&self, grant: &Grant) -> Result<(), String> {
        self.check_cloud(grant.cloud)?;
        if !grant_clouds(grant.kind).contains(&self.cloud) {
            return Err(format!(
                "a {} grant does not exist in {}",
                grant.kind.as_str(),
                self.cloud
            ));
        }
        match self.cloud {
            Cloud::Aws => self.aws_grant(grant)?,
            Cloud::Azure => self.azure_grant(grant)?,
            Cloud::Gcp => {
                let resource = grant.resource.as_str();
                if !self.gcp_inside(resource) {
                    return Err(format!(
                        "resource `{resource}` is outside its scope {}",
                        self.id()
                    ));
                }
            }
        }
        // A PIM schedule may start in the future; any other grant was made before it was read.
        if let Some(created_at) = grant.created_at
            && !matches!(grant.kind, GrantKind::PimActive | GrantKind::PimEligible)
        {
            self.not_after("created_at", created_at)?;
        }
        Ok(())
    }

    fn id(&self) -> String {
        match (self.cloud, self.kind) {
            (Cloud::Aws, _) => format!("aws:{}", self.name),
            (Cloud::Azure, ScopeKind::Tenant) => format!("azure:/tenants/{}", self.name),
            (Cloud::Azure, _) => format!("azure:/subscriptions/{}", self.name),
            (Cloud::Gcp, _) => format!("gcp:{}", self.name),
        }
    }

    fn check_cloud(&self, cloud: Cloud) -> Result<(), String> {
        if cloud == self.cloud {
            Ok(())
        } else {
            Err(format!(
                "`cloud` is {cloud} but its scope {} is an {} scope",
                self.id(),
                self.cloud
            ))
        }
    }

    fn not_after(&self, field: &str, instant: Timestamp) -> Result<(), String> {
        let Some(read_at) = self.read_at else {
            return Ok(());
        };
        if instant.seconds_since(read_at) > CLOCK_SKEW_SECONDS {
            return Err(format!(
                "`{field}` {instant} is after its scope {} was read ({read_at})",
                self.id()
            ));
        }
        Ok(())
    }

    fn aws_in_account(&self, field: &str, arn: &str) -> Result<(), String> {
        match aws_arn(arn) {
            Some((service, account)) if service == "iam" && account == self.name => Ok(()),
            Some((_, account)) if account != self.name => Err(format!(
                "{field} `{arn}` is in account {account}, not in its scope aws:{}",
                self.name
            )),
            _ => Err(format!(
                "{field} `{arn}` is not an IAM ARN of account {}",
                self.name
            )),
        }
    }

    fn aws_grant(&self, grant: &Grant) -> Result<(), String> {
        if grant.resource != self.name {
            return Err(format!(
                "resource `{}` is not its scope's account {}",
                grant.resource, self.name
            ));
        }
        match grant.kind {
            GrantKind::RoleTrust => self.aws_in_account("entitlement", &grant.entitlement)?,
            GrantKind::ManagedPolicy => {
                self.aws_in_account("principal", grant.principal.as_str())?;
                match aws_arn(&grant.entitlement) {
                    Some(("iam", account)) if account == "aws" || account == self.name => {}
                    _ => {
                        return Err(format!(
                            "managed policy `{}` is neither AWS's nor account {}'s",
                            grant.entitlement, self.name
                        ));
                    }
                }
            }
            GrantKind::GroupMembership => {
                self.aws_in_account("principal", grant.principal.as_str())?;
                self.aws_in_account("entitlement", &grant.entitlement)?;
            }
            _ => self.aws_in_account("principal", grant.principal.as_str())?,
        }
        if let Via::Group(group) = &grant.via {
            self.aws_in_account("via.group", group.as_str())?;
        }
        Ok(())
    }

    fn azure_grant(&self, grant: &Grant) -> Result<(), String> {
        let tenant_only = matches!(
            grant.kind,
            GrantKind::DirectoryRole | GrantKind::AppRole | GrantKind::GroupMembership
        );
        match self.kind {
            ScopeKind::Subscription if tenant_only => Err(format!(
                "a {} grant is read in its tenant, not in {}",
                grant.kind.as_str(),
                self.id()
            )),
            ScopeKind::Subscription => {
                let mut places = vec![("id", grant.id.as_str()), ("resource", &grant.resource)];
                if let Via::Inherited(source) = &grant.via {
                    places.push(("via.inherited", source));
                }
                for (field, place) in places {
                    if let Some(subscription) = subscription_of(place)
                        && !subscription.eq_ignore_ascii_case(&self.name)
                    {
                        return Err(format!(
                            "{field} `{place}` is in subscription {subscription}, not in its scope {}",
                            self.id()
                        ));
                    }
                }
                let inside = subscription_of(&grant.resource).is_some();
                if !inside && !matches!(grant.via, Via::Inherited(_)) {
                    return Err(format!(
                        "resource `{}` is outside subscription {} but the grant is not marked inherited",
                        grant.resource, self.name
                    ));
                }
                if subscription_of(grant.id.as_str()).is_none()
                    && !starts_with_ignore_case(grant.id.as_str(), "/providers/")
                {
                    return Err(format!(
                        "id `{}` is not an Azure resource id under {}",
                        grant.id,
                        self.id()
                    ));
                }
                Ok(())
            }
            _ if grant.kind == GrantKind::RoleAssignment => Err(format!(
                "a role assignment is read in a subscription, not in the tenant {}",
                self.id()
            )),
            _ => {
                for (field, place) in [("id", grant.id.as_str()), ("resource", &grant.resource)] {
                    if subscription_of(place).is_some() {
                        return Err(format!(
                            "{field} `{place}` is a subscription's, not its tenant scope {}'s",
                            self.id()
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// A Google resource inside this container: its own name (`projects/p`), a name under it
    /// (`projects/p/serviceAccounts/…`), or a full resource name of a service
    /// (`//pubsub.googleapis.com/projects/p/topics/t`). Buckets are named under the project
    /// `_` (their names are global): such a name says no project, and is taken as it is.
    fn gcp_inside(&self, resource: &str) -> bool {
        let (full, name) = match resource.strip_prefix("//") {
            Some(rest) => (true, rest.split_once('/').map_or("", |(_, path)| path)),
            None => (false, resource),
        };
        let under = |container: &str| {
            name == container
                || name
                    .strip_prefix(container)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        under(&self.name) || (full && self.kind == ScopeKind::Project && under("projects/_"))
    }

    fn gcp_key(&self, credential: &Credential) -> Result<(), String> {
        if self.kind != ScopeKind::Project {
            return Err(format!(
                "a service-account key is read in its project, not in {}",
                self.id()
            ));
        }
        let id = credential.id.as_str();
        let parts: Vec<&str> = id.split('/').collect();
        let (project, email) = match parts.as_slice() {
            ["projects", project, "serviceAccounts", email, "keys", key] if !key.is_empty() => {
                (*project, *email)
            }
            _ => {
                return Err(format!(
                    "key `{id}` is not named projects/<project>/serviceAccounts/<email>/keys/<id>"
                ));
            }
        };
        if format!("projects/{project}") != self.name {
            return Err(format!(
                "key `{id}` is in project {project}, not in its scope {}",
                self.id()
            ));
        }
        let owner = format!("serviceAccount:{email}");
        if credential.principal.as_str() != owner {
            return Err(format!(
                "key `{id}` belongs to {owner}, not to its principal {}",
                credential.principal
            ));
        }
        Ok(())
    }
}

/// The longest message kept, in characters: messages quote ids, and an id can be megabytes.
const LONGEST_MESSAGE: usize = 600;

/// `message`, cut to [`LONGEST_MESSAGE`] characters, saying so.
#[must_use]
pub fn cut(message: String) -> String {
    if message.chars().count() <= LONGEST_MESSAGE {
        return message;
    }
    let mut kept: String = message.chars().take(LONGEST_MESSAGE).collect();
    kept.push_str(&format!(
        "… (cut: the message quotes {} characters)",
        message.chars().count()
    ));
    kept
}

/// One record of a file that cannot be what it claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where it is (`grants[3]`).
    pub path: JsonPath,
    /// What is wrong.
    pub message: String,
}

/// Every record of `snapshot` that contradicts its scope, every id used twice in it, and every
/// scope whose id, cloud and kind disagree. A file lapse wrote has none.
#[must_use]
pub fn check_snapshot(snapshot: &Snapshot) -> Vec<Problem> {
    let mut problems = Vec::new();
    let scopes = check_scopes(&snapshot.scopes, "scopes", &mut problems);
    let mut record = |path: JsonPath,
                      scope: &ScopeId,
                      check: &dyn Fn(&ScopeShape) -> Result<(), String>| {
        let result = match scopes.get(scope.as_str()) {
            Some(shape) => check(shape),
            None => Err(format!(
                "its scope `{scope}` is not among the file's scopes: a snapshot holds only what it read"
            )),
        };
        if let Err(message) = result {
            problems.push(Problem {
                path,
                message: cut(message),
            });
        }
    };
    for (index, principal) in snapshot.principals.iter().enumerate() {
        record(
            JsonPath::element("principals", index),
            &principal.scope,
            &|shape| shape.check_principal(principal),
        );
    }
    for (index, credential) in snapshot.credentials.iter().enumerate() {
        record(
            JsonPath::element("credentials", index),
            &credential.scope,
            &|shape| shape.check_credential(credential),
        );
    }
    for (index, grant) in snapshot.grants.iter().enumerate() {
        record(JsonPath::element("grants", index), &grant.scope, &|shape| {
            shape.check_grant(grant)
        });
    }
    duplicates(
        &snapshot.principals,
        "principals",
        |principal| principal.id.as_str(),
        &mut problems,
    );
    duplicates(
        &snapshot.credentials,
        "credentials",
        |credential| credential.id.as_str(),
        &mut problems,
    );
    duplicates(
        &snapshot.grants,
        "grants",
        |grant| grant.id.as_str(),
        &mut problems,
    );
    problems
}

/// Checks each scope's id against its cloud and kind, and that no scope appears twice; the
/// scopes that pass, by id, each with the time it was read.
pub fn check_scopes<'a>(
    scopes: &'a [ScopeStatus],
    key: &'static str,
    problems: &mut Vec<Problem>,
) -> HashMap<&'a str, ScopeShape> {
    let mut shapes = HashMap::new();
    for (index, status) in scopes.iter().enumerate() {
        let path = JsonPath::element(key, index);
        match ScopeShape::parse(&status.id).and_then(|shape| {
            shape.check_status(status)?;
            Ok(shape)
        }) {
            Ok(mut shape) => {
                shape.read_at = Some(status.taken_at);
                if shapes.insert(status.id.as_str(), shape).is_some() {
                    problems.push(Problem {
                        path,
                        message: format!(
                            "scope {} appears twice: a snapshot reads each scope once",
                            status.id
                        ),
                    });
                }
            }
            Err(message) => problems.push(Problem {
                path,
                message: cut(message),
            }),
        }
    }
    shapes
}

/// Reports every id used a second time. Files lapse writes are sorted by id, which makes the
/// common case one comparison per record.
pub fn duplicates<T>(
    items: &[T],
    key: &'static str,
    id: impl Fn(&T) -> &str,
    problems: &mut Vec<Problem>,
) {
    if items.windows(2).all(|pair| id(&pair[0]) < id(&pair[1])) {
        return;
    }
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let earlier = *first.entry(id(item)).or_insert(index);
        if earlier != index {
            problems.push(Problem {
                path: JsonPath::element(key, index),
                message: cut(format!(
                    "id `{}` is already used by {key}[{earlier}]: a file holds each record once",
                    id(item)
                )),
            });
        }
    }
}

/// The cloud a credential kind exists in.
#[must_use]
pub fn credential_cloud(kind: CredentialKind) -> Cloud {
    match kind {
        CredentialKind::AwsAccessKey
        | CredentialKind::AwsConsolePassword
        | CredentialKind::AwsSigningCertificate
        | CredentialKind::AwsSshKey => Cloud::Aws,
        CredentialKind::AzurePassword
        | CredentialKind::AzureCertificate
        | CredentialKind::AzureFederated => Cloud::Azure,
        CredentialKind::GcpSaKey => Cloud::Gcp,
    }
}

/// The clouds a grant kind exists in.
#[must_use]
pub fn grant_clouds(kind: GrantKind) -> &'static [Cloud] {
    match kind {
        GrantKind::ManagedPolicy | GrantKind::InlinePolicy | GrantKind::RoleTrust => &[Cloud::Aws],
        GrantKind::GroupMembership => &[Cloud::Aws, Cloud::Azure],
        GrantKind::RoleAssignment
        | GrantKind::PimEligible
        | GrantKind::PimActive
        | GrantKind::DirectoryRole
        | GrantKind::AppRole => &[Cloud::Azure],
        GrantKind::IamBinding => &[Cloud::Gcp],
    }
}

fn kind_name(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::Account => "account",
        ScopeKind::Tenant => "tenant",
        ScopeKind::Subscription => "subscription",
        ScopeKind::Project => "project",
        ScopeKind::Folder => "folder",
        ScopeKind::Organization => "organization",
    }
}

/// `(service, account)` of an AWS ARN (`arn:<partition>:<service>:<region>:<account>:<resource>`).
fn aws_arn(text: &str) -> Option<(&str, &str)> {
    let mut parts = text.splitn(6, ':');
    if parts.next()? != "arn" || !parts.next()?.starts_with("aws") {
        return None;
    }
    let service = parts.next()?;
    let _region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    (!resource.is_empty()).then_some((service, account))
}

/// The subscription an Azure resource id is under, if it is under one.
fn subscription_of(resource: &str) -> Option<&str> {
    let prefix = "/subscriptions/";
    if !starts_with_ignore_case(resource, prefix) {
        return None;
    }
    let rest = &resource[prefix.len()..];
    Some(rest.split('/').next().unwrap_or(rest))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Deserializes tags, refusing a key written twice: JSON parsers keep either the first or the
/// last, so a file with both says two things at once (`break-glass: "true"` and `"false"`).
///
/// # Errors
/// The duplicated key, at its position.
pub(crate) fn unique_tags<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    struct TagsVisitor;
    impl<'de> serde::de::Visitor<'de> for TagsVisitor {
        type Value = std::collections::BTreeMap<String, String>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a map of tag names to values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut tags = std::collections::BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if tags.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "tag `{key}` is written twice"
                    )));
                }
                tags.insert(key, value);
            }
            Ok(tags)
        }
    }
    deserializer.deserialize_map(TagsVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CredentialStatus, PrincipalKind};

    fn shape(id: &str) -> ScopeShape {
        ScopeShape::parse(&ScopeId::from(id)).expect("scope id")
    }

    fn grant(
        scope: &str,
        kind: GrantKind,
        principal: &str,
        entitlement: &str,
        resource: &str,
    ) -> Grant {
        Grant {
            id: format!("{principal}|{entitlement}").into(),
            cloud: shape(scope).cloud,
            scope: scope.into(),
            principal: principal.into(),
            entitlement: entitlement.to_owned(),
            entitlement_id: None,
            resource: resource.to_owned(),
            kind,
            via: Via::Direct,
            created_at: None,
            expires_at: None,
            expiry_source: None,
            condition: None,
            privileged: false,
        }
    }

    fn key(scope: &str, id: &str, principal: &str) -> Credential {
        Credential {
            id: id.into(),
            principal: principal.into(),
            cloud: shape(scope).cloud,
            scope: scope.into(),
            kind: match shape(scope).cloud {
                Cloud::Aws => CredentialKind::AwsAccessKey,
                Cloud::Azure => CredentialKind::AzurePassword,
                Cloud::Gcp => CredentialKind::GcpSaKey,
            },
            display_name: None,
            created_at: None,
            expires_at: None,
            last_used: Usage::Unknown,
            status: CredentialStatus::Active,
            cloud_managed: false,
        }
    }

    const AWS: &str = "aws:111122223333";
    const SUBSCRIPTION: &str = "azure:/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17";
    const TENANT: &str = "azure:/tenants/4f9b2c1d-8a3e-4d5b-9c7f-2e1a6b3d8c90";
    const PROJECT: &str = "gcp:projects/acme-prod";

    #[test]
    fn scope_ids_are_taken_apart_or_refused() {
        assert_eq!(shape(AWS).name, "111122223333");
        assert_eq!(shape(TENANT).kind, ScopeKind::Tenant);
        assert_eq!(shape("gcp:folders/42").kind, ScopeKind::Folder);
        for bad in [
            "aws:1",
            "aws:11112222333x",
            "azure:/subscriptions/a/b",
            "azure:/groups/x",
            "gcp:projects/",
            "gcp:buckets/x",
            "other:1",
            "",
        ] {
            assert!(ScopeShape::parse(&ScopeId::from(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_providers_write_passes() {
        let aws = shape(AWS);
        let user = "arn:aws:iam::111122223333:user/path/ana";
        aws.check_grant(&grant(
            AWS,
            GrantKind::ManagedPolicy,
            user,
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "111122223333",
        ))
        .expect("AWS managed policy");
        aws.check_grant(&grant(
            AWS,
            GrantKind::ManagedPolicy,
            user,
            "arn:aws:iam::111122223333:policy/app",
            "111122223333",
        ))
        .expect("customer managed policy");
        // A role trusts a principal of another account: the role is this account's.
        aws.check_grant(&grant(
            AWS,
            GrantKind::RoleTrust,
            "arn:aws:iam::999999999999:root",
            "arn:aws:iam::111122223333:role/x",
            "111122223333",
        ))
        .expect("role trust");
        aws.check_credential(&key(AWS, "AKIAEXAMPLE", user))
            .expect("key");
        aws.check_credential(&key(AWS, &format!("{user}/login-profile"), user))
            .expect("password");

        let subscription = shape(SUBSCRIPTION);
        let mut inherited = grant(
            SUBSCRIPTION,
            GrantKind::RoleAssignment,
            "p",
            "Owner",
            "/providers/Microsoft.Management/managementGroups/mg",
        );
        inherited.id = "/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/roleAssignments/g".into();
        inherited.via =
            Via::Inherited("/providers/Microsoft.Management/managementGroups/mg".to_owned());
        subscription
            .check_grant(&inherited)
            .expect("inherited from a management group");
        let mut direct = grant(
            SUBSCRIPTION,
            GrantKind::RoleAssignment,
            "p",
            "Owner",
            "/SUBSCRIPTIONS/3C1F8E2A-7B4D-4E9A-A1C5-9D2F6E8B0A17/resourceGroups/rg",
        );
        direct.id = "/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/g".into();
        subscription
            .check_grant(&direct)
            .expect("ids are case-insensitive");
        shape(TENANT)
            .check_grant(&grant(
                TENANT,
                GrantKind::DirectoryRole,
                "p",
                "Global Administrator",
                "/",
            ))
            .expect("directory role");

        let project = shape(PROJECT);
        let account = "serviceAccount:ci@acme-prod.iam.gserviceaccount.com";
        for resource in [
            "projects/acme-prod",
            "projects/acme-prod/serviceAccounts/ci@acme-prod.iam.gserviceaccount.com",
            "//pubsub.googleapis.com/projects/acme-prod/topics/t",
            "//storage.googleapis.com/projects/_/buckets/b",
        ] {
            project
                .check_grant(&grant(
                    PROJECT,
                    GrantKind::IamBinding,
                    "user:other@elsewhere.example",
                    "roles/viewer",
                    resource,
                ))
                .unwrap_or_else(|error| panic!("{resource}: {error}"));
        }
        project
            .check_credential(&key(
                PROJECT,
                "projects/acme-prod/serviceAccounts/ci@acme-prod.iam.gserviceaccount.com/keys/k1",
                account,
            ))
            .expect("key");
    }

    #[test]
    fn records_reaching_outside_their_scope_are_refused() {
        let aws = shape(AWS);
        let other = "arn:aws:iam::999999999999:user/x";
        let mine = "arn:aws:iam::111122223333:user/x";
        let refused = |result: Result<(), String>, words: &str| {
            let error = result.expect_err(words);
            assert!(error.contains(words), "{error}");
        };
        refused(
            aws.check_grant(&grant(
                AWS,
                GrantKind::ManagedPolicy,
                other,
                "arn:aws:iam::aws:policy/A",
                "111122223333",
            )),
            "is in account 999999999999",
        );
        refused(
            aws.check_grant(&grant(
                AWS,
                GrantKind::ManagedPolicy,
                mine,
                "arn:aws:iam::aws:policy/A",
                "999999999999",
            )),
            "is not its scope's account",
        );
        refused(
            aws.check_grant(&grant(
                AWS,
                GrantKind::RoleTrust,
                other,
                "arn:aws:iam::999999999999:role/r",
                "111122223333",
            )),
            "entitlement",
        );
        refused(
            aws.check_grant(&grant(
                AWS,
                GrantKind::IamBinding,
                mine,
                "roles/owner",
                "111122223333",
            )),
            "does not exist in aws",
        );
        refused(
            aws.check_credential(&key(AWS, "AKIA", other)),
            "is in account 999999999999",
        );
        refused(
            aws.check_principal(&Principal {
                id: "serviceAccount:x@p.iam.gserviceaccount.com".into(),
                cloud: Cloud::Aws,
                scope: AWS.into(),
                kind: PrincipalKind::Workload,
                native_type: None,
                display_name: None,
                unique_id: None,
                created_at: None,
                last_activity: Usage::Unknown,
                owner: None,
                tags: std::collections::BTreeMap::new(),
                enabled: true,
                cloud_managed: false,
                federation_available: false,
            }),
            "is not an IAM ARN",
        );

        let subscription = shape(SUBSCRIPTION);
        let mut elsewhere = grant(
            SUBSCRIPTION,
            GrantKind::RoleAssignment,
            "p",
            "Owner",
            "/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17",
        );
        elsewhere.id = "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleAssignments/g".into();
        refused(
            subscription.check_grant(&elsewhere),
            "is in subscription 00000000",
        );
        let mut management_group = grant(
            SUBSCRIPTION,
            GrantKind::RoleAssignment,
            "p",
            "Owner",
            "/providers/Microsoft.Management/managementGroups/mg",
        );
        management_group.id = "/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/roleAssignments/g".into();
        refused(
            subscription.check_grant(&management_group),
            "not marked inherited",
        );
        refused(
            shape(TENANT).check_grant(&grant(TENANT, GrantKind::RoleAssignment, "p", "Owner", "/")),
            "read in a subscription",
        );

        let project = shape(PROJECT);
        for resource in [
            "projects/acme-prod-2",
            "projects/other",
            "//pubsub.googleapis.com/projects/other/topics/t",
            "folders/1",
            "",
        ] {
            refused(
                project.check_grant(&grant(
                    PROJECT,
                    GrantKind::IamBinding,
                    "user:a@b.example",
                    "roles/owner",
                    resource,
                )),
                "is outside its scope",
            );
        }
        let account = "serviceAccount:ci@acme-prod.iam.gserviceaccount.com";
        refused(
            project.check_credential(&key(
                PROJECT,
                "projects/other/serviceAccounts/ci@acme-prod.iam.gserviceaccount.com/keys/k",
                account,
            )),
            "is in project other",
        );
        refused(
            project.check_credential(&key(
                PROJECT,
                "projects/acme-prod/serviceAccounts/admin@acme-prod.iam.gserviceaccount.com/keys/k",
                account,
            )),
            "belongs to serviceAccount:admin@",
        );
    }

    #[test]
    fn times_after_the_reading_are_refused_only_past_a_day_of_skew() {
        let mut aws = shape(AWS);
        aws.read_at = Some(Timestamp::parse_rfc3339("2026-11-20T06:00:00Z").expect("time"));
        let mut credential = key(AWS, "AKIA", "arn:aws:iam::111122223333:user/x");
        credential.created_at =
            Some(Timestamp::parse_rfc3339("2026-11-20T18:00:00Z").expect("time"));
        aws.check_credential(&credential).expect("within the skew");
        credential.last_used =
            Usage::At(Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").expect("time"));
        let error = aws.check_credential(&credential).expect_err("a year later");
        assert!(
            error.contains("`last_used` 2027-01-01T00:00:00Z is after its scope"),
            "{error}"
        );
    }
}
