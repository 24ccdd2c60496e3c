//! Built-in knowledge: which entitlements are privileged in each cloud, and which principals
//! lapse never touches whatever the policy says.

use std::collections::HashSet;

use lapse_sdk::{Cloud, Grant, GrantKind, Principal, ScopeId};

use crate::policy::{Pattern, Patterns, Policy};

/// AWS-managed policies (by name) that grant administrative or IAM-changing power.
const AWS_MANAGED_POLICIES: &[&str] = &[
    "AdministratorAccess",
    "AdministratorAccess-Amplify",
    "AdministratorAccess-AWSElasticBeanstalk",
    "IAMFullAccess",
    "PowerUserAccess",
    "AWSOrganizationsFullAccess",
];

/// Azure RBAC roles and Entra directory roles, by name and by (template) id.
const AZURE_ROLES: &[&str] = &[
    "Owner",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "User Access Administrator",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Role Based Access Control Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    "Global Administrator",
    "62e90394-69f5-4237-9190-012177145e10",
    "Privileged Role Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814",
    "Privileged Authentication Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "Application Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "Cloud Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7",
    "Security Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "User Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1",
];

/// Microsoft Graph application permissions (app roles held by a service principal) that reach
/// tenant-wide control, by `<resource>/<value>` as the Azure provider names them and by app
/// role id (the same in every tenant). Graph's permissions reference warns of each: the first
/// two grant authorization ("allow an application to grant additional privileges to itself"),
/// so an app can assign itself Global Administrator or any other permission; the next two
/// manage every application's credentials ("allow an application to act as other entities");
/// `RoleAssignmentSchedule.ReadWrite.Directory` manages active directory role membership
/// through PIM, so it too can make its holder Global Administrator.
const GRAPH_APP_ROLES: &[(&str, &str)] = &[
    (
        "Microsoft Graph/RoleManagement.ReadWrite.Directory",
        "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8",
    ),
    (
        "Microsoft Graph/AppRoleAssignment.ReadWrite.All",
        "06b708a9-e830-4db3-a914-8e69da51d44f",
    ),
    (
        "Microsoft Graph/Application.ReadWrite.All",
        "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    ),
    (
        "Microsoft Graph/Directory.ReadWrite.All",
        "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
    ),
    (
        "Microsoft Graph/RoleAssignmentSchedule.ReadWrite.Directory",
        "dd199f4a-f148-40a4-a2ec-f0069cc799ec",
    ),
];

/// Google Cloud roles that own a resource or can change who has access to it.
const GCP_ROLES: &[&str] = &[
    "roles/owner",
    "roles/editor",
    "roles/iam.securityAdmin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountKeyAdmin",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountUser",
    "roles/iam.roleAdmin",
    "roles/iam.organizationRoleAdmin",
    "roles/iam.workloadIdentityPoolAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/resourcemanager.folderAdmin",
    "roles/resourcemanager.folderIamAdmin",
    "roles/resourcemanager.organizationAdmin",
];

/// Principals that are part of the clouds' own machinery. Revoking them breaks the account
/// (the organization's access role, service-linked roles, Identity Center's roles, Google's
/// service agents), so no policy can put them in a plan.
const PROTECTED_PRINCIPALS: &[(&str, &str)] = &[
    (
        "arn:aws*:iam::*:role/OrganizationAccountAccessRole",
        "AWS Organizations access role",
    ),
    (
        "arn:aws*:iam::*:role/aws-service-role/*",
        "AWS service-linked role",
    ),
    (
        "arn:aws*:iam::*:role/aws-reserved/*",
        "AWS IAM Identity Center reserved role",
    ),
    (
        "serviceAccount:service-*@*.iam.gserviceaccount.com",
        "Google-managed service agent",
    ),
    (
        "serviceAccount:*@cloudservices.gserviceaccount.com",
        "Google APIs service agent",
    ),
    (
        "serviceAccount:*@cloudbuild.gserviceaccount.com",
        "Google Cloud Build service agent",
    ),
];

/// Classifies entitlements as privileged: the built-in catalog, plus the policy's `privileged`
/// list, plus what the provider found by reading the entitlement itself.
#[derive(Debug)]
pub struct Classifier<'a> {
    azure_roles: HashSet<&'static str>,
    gcp_roles: HashSet<&'static str>,
    policy: &'a Policy,
}

impl<'a> Classifier<'a> {
    /// The catalog extended by `policy`.
    #[must_use]
    pub fn new(policy: &'a Policy) -> Self {
        Classifier {
            azure_roles: AZURE_ROLES.iter().copied().collect(),
            gcp_roles: GCP_ROLES.iter().copied().collect(),
            policy,
        }
    }

    /// True when the grant's entitlement is privileged.
    #[must_use]
    pub fn is_privileged(&self, grant: &Grant) -> bool {
        grant.privileged || self.in_catalog(grant) || self.in_policy_list(grant)
    }

    fn in_catalog(&self, grant: &Grant) -> bool {
        let names =
            std::iter::once(grant.entitlement.as_str()).chain(grant.entitlement_id.as_deref());
        match grant.cloud {
            Cloud::Aws => names
                .filter_map(|arn| arn.split_once(":iam::aws:policy/"))
                .any(|(_, name)| {
                    // AWS-managed policy names may sit under a path (`job-function/…`).
                    let name = name.rsplit('/').next().unwrap_or(name);
                    AWS_MANAGED_POLICIES.contains(&name)
                }),
            // An app role is named `<resource>/<value>`, and any application may define a
            // role called "Owner": only the Graph permissions above count.
            Cloud::Azure if grant.kind == GrantKind::AppRole => {
                GRAPH_APP_ROLES.iter().any(|(name, id)| {
                    grant.entitlement == *name
                        || grant
                            .entitlement_id
                            .as_deref()
                            .is_some_and(|role| role.eq_ignore_ascii_case(id))
                })
            }
            Cloud::Azure => names
                .map(|name| name.rsplit('/').next().unwrap_or(name))
                .any(|name| self.azure_roles.contains(name)),
            Cloud::Gcp => names.into_iter().any(|name| self.gcp_roles.contains(name)),
        }
    }

    fn in_policy_list(&self, grant: &Grant) -> bool {
        self.policy.privileged.iter().any(|entry| {
            entry
                .clouds
                .as_ref()
                .is_none_or(|clouds| clouds.contains(&grant.cloud))
                && (entry.entitlement.is_match(&grant.entitlement)
                    || grant
                        .entitlement_id
                        .as_deref()
                        .is_some_and(|id| entry.entitlement.is_match(id)))
        })
    }
}

/// Built-in protection that no policy can lift.
#[derive(Debug)]
pub struct BuiltinProtection {
    patterns: Vec<(Patterns, &'static str)>,
}

impl Default for BuiltinProtection {
    fn default() -> Self {
        BuiltinProtection {
            patterns: PROTECTED_PRINCIPALS
                .iter()
                .map(|(pattern, reason)| (Patterns::one(&Pattern((*pattern).to_owned())), *reason))
                .collect(),
        }
    }
}

impl BuiltinProtection {
    /// Why a principal id is protected by lapse itself, if it is. `scope` is where the id was
    /// seen: an account's own root is protected, another account's root (trusted by a role) is
    /// an ordinary principal.
    #[must_use]
    pub fn reason(
        &self,
        principal_id: &str,
        principal: Option<&Principal>,
        scope: &ScopeId,
    ) -> Option<&'static str> {
        if principal.is_some_and(|principal| principal.cloud_managed) {
            return Some("managed by the cloud provider");
        }
        if let Some(account) = scope.as_str().strip_prefix("aws:")
            && principal_id.starts_with("arn:aws")
            && principal_id.ends_with(&format!(":iam::{account}:root"))
        {
            return Some("AWS account root");
        }
        self.patterns
            .iter()
            .find(|(patterns, _)| patterns.is_match(principal_id))
            .map(|(_, reason)| *reason)
    }
}

/// Azure built-in roles that must keep at least one holder per resource (removing the last one
/// locks everyone out of managing access), by role definition id (the same in every tenant) and
/// by name.
const LAST_HOLDER_ROLES: [(&str, &str); 2] = [
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
    (
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
    ),
];

/// The role definition id of an Azure grant, lowercase: the last segment of its
/// `entitlement_id` (`/subscriptions/…/providers/Microsoft.Authorization/roleDefinitions/<id>`),
/// the same for one role whatever scope the path names.
#[must_use]
pub fn role_definition_id(grant: &Grant) -> Option<String> {
    let id = grant.entitlement_id.as_deref()?.trim_end_matches('/');
    let last = id.rsplit('/').next().unwrap_or(id);
    (!last.is_empty()).then(|| last.to_ascii_lowercase())
}

/// Azure entitlements that must keep at least one holder per resource: known by their role
/// definition id, so a role whose name could not be read (and shows as its id) is still known,
/// or else by name.
#[must_use]
pub fn is_last_holder_guarded(grant: &Grant) -> bool {
    grant.cloud == Cloud::Azure
        && (LAST_HOLDER_ROLES
            .iter()
            .any(|(_, name)| grant.entitlement == *name)
            || role_definition_id(grant)
                .is_some_and(|id| LAST_HOLDER_ROLES.iter().any(|(known, _)| id == *known)))
}

/// Which role a holder holds: its role definition id, or its display name when the record
/// carries no id (then lapse cannot tell two roles of one name apart).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HeldRole {
    /// The role definition id, lowercase.
    Id(String),
    /// The display name: no id was read.
    Name(String),
}

/// What must keep a holder: one role on one resource (ARM ids compared without case).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HolderSlot {
    /// The resource, lowercase, without a trailing `/`.
    pub resource: String,
    /// The role.
    pub role: HeldRole,
}

/// The slot a guarded grant holds. Display text never decides whether two grants hold the
/// same role: names can be missing, localized or edited, ids cannot.
#[must_use]
pub fn holder_slot(grant: &Grant) -> HolderSlot {
    HolderSlot {
        resource: grant.resource.trim_end_matches('/').to_ascii_lowercase(),
        role: match role_definition_id(grant) {
            Some(id) => HeldRole::Id(id),
            None => HeldRole::Name(grant.entitlement.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use lapse_sdk::{GrantId, GrantKind, ScopeId, Via};

    use super::*;

    fn grant(cloud: Cloud, entitlement: &str) -> Grant {
        Grant {
            id: GrantId::from("g"),
            cloud,
            scope: ScopeId::from("s"),
            principal: "p".into(),
            entitlement: entitlement.to_owned(),
            entitlement_id: None,
            resource: "r".to_owned(),
            kind: GrantKind::ManagedPolicy,
            via: Via::Direct,
            created_at: None,
            expires_at: None,
            expiry_source: None,
            condition: None,
            privileged: false,
        }
    }

    #[test]
    fn the_catalog_knows_each_clouds_admin_roles() {
        let policy = Policy::default();
        let classifier = Classifier::new(&policy);
        assert!(classifier.is_privileged(&grant(
            Cloud::Aws,
            "arn:aws:iam::aws:policy/AdministratorAccess"
        )));
        assert!(classifier.is_privileged(&grant(
            Cloud::Aws,
            "arn:aws-us-gov:iam::aws:policy/IAMFullAccess"
        )));
        assert!(
            !classifier.is_privileged(&grant(Cloud::Aws, "arn:aws:iam::aws:policy/ReadOnlyAccess"))
        );
        // A customer policy that borrows the name is not the AWS-managed one.
        assert!(!classifier.is_privileged(&grant(
            Cloud::Aws,
            "arn:aws:iam::111122223333:policy/AdministratorAccess"
        )));
        assert!(classifier.is_privileged(&grant(Cloud::Azure, "Owner")));
        assert!(classifier.is_privileged(&grant(
            Cloud::Azure,
            "/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
        )));
        assert!(classifier.is_privileged(&grant(Cloud::Gcp, "roles/owner")));
        assert!(!classifier.is_privileged(&grant(Cloud::Gcp, "roles/viewer")));
    }

    #[test]
    fn graph_permissions_that_reach_tenant_wide_control_are_privileged_app_roles() {
        let policy = Policy::default();
        let classifier = Classifier::new(&policy);
        let app_role = |entitlement: &str, id: &str| Grant {
            kind: GrantKind::AppRole,
            entitlement_id: Some(id.to_owned()),
            ..grant(Cloud::Azure, entitlement)
        };
        assert!(classifier.is_privileged(&app_role(
            "Microsoft Graph/RoleManagement.ReadWrite.Directory",
            "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8"
        )));
        // By id alone: a role whose name could not be resolved keeps its id.
        assert!(classifier.is_privileged(&app_role(
            "Microsoft Graph/06B708A9-E830-4DB3-A914-8E69DA51D44F",
            "06B708A9-E830-4DB3-A914-8E69DA51D44F"
        )));
        assert!(!classifier.is_privileged(&app_role(
            "Microsoft Graph/User.Read.All",
            "df021288-bdef-4463-88db-98f22de89214"
        )));
        // Another application's role that borrows an Azure role's name is not that role.
        assert!(!classifier.is_privileged(&app_role(
            "contoso-billing-api/Owner",
            "5a1f7d3c-2b4e-4c6a-8d9f-0e1b2c3d4e5f"
        )));
    }

    #[test]
    fn the_clouds_own_machinery_is_protected() {
        let protection = BuiltinProtection::default();
        let own = ScopeId::from("aws:111122223333");
        assert!(
            protection
                .reason("arn:aws:iam::111122223333:root", None, &own)
                .is_some()
        );
        assert!(
            protection
                .reason("arn:aws:iam::999988887777:root", None, &own)
                .is_none(),
            "a vendor account trusted by a role is not ours to protect"
        );
        let own = ScopeId::from("aws:111122223333");
        assert!(
            protection
                .reason("arn:aws:iam::111122223333:root", None, &own)
                .is_some()
        );
        assert!(
            protection
                .reason("arn:aws:iam::999988887777:root", None, &own)
                .is_none(),
            "a vendor account trusted by a role is not ours to protect"
        );
        assert!(
            protection
                .reason(
                    "arn:aws:iam::111122223333:role/OrganizationAccountAccessRole",
                    None,
                    &own
                )
                .is_some()
        );
        assert!(protection.reason("arn:aws:iam::111122223333:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS", None, &own).is_some());
        assert!(
            protection
                .reason(
                    "serviceAccount:service-123@gcp-sa-pubsub.iam.gserviceaccount.com",
                    None,
                    &own
                )
                .is_some()
        );
        assert!(
            protection
                .reason(
                    "serviceAccount:ci@acme-prod.iam.gserviceaccount.com",
                    None,
                    &own
                )
                .is_none()
        );
        assert!(
            protection
                .reason("arn:aws:iam::111122223333:role/ci", None, &own)
                .is_none()
        );
    }
}
