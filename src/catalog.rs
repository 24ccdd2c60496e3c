//! Built-in knowledge: which entitlements are privileged in each cloud, and which principals
//! lapse never touches whatever the policy says.

use std::collections::HashSet;

use lapse_sdk::{Cloud, Grant, Principal, ScopeId};

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

/// Azure entitlements that must keep at least one holder per resource: removing the last one
/// locks everyone out of managing access.
#[must_use]
pub fn is_last_holder_guarded(grant: &Grant) -> bool {
    grant.cloud == Cloud::Azure
        && matches!(
            grant.entitlement.as_str(),
            "Owner" | "User Access Administrator"
        )
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
