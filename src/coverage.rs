//! Every scope a run is about is accounted for: read (completely or not), or reported as not
//! read. Never silently absent, because a scope nobody read looks exactly like a clean one.
//!
//! A live run is about the scopes its flags, or else the policy's `scopes`, name by id
//! ([`named_scopes`]); a provider that returns nothing for one of them leaves it incomplete.
//! A run over snapshot files is about every scope the policy names ([`over_files`]): one no file
//! covers (the Azure and Google files of a CI matrix missing) is an incomplete scope, "not
//! read", and the run exits 3. The operator may narrow a file run on purpose, naming the clouds
//! (`--provider`) or the scopes (`--scope`) to judge: the run then judges only those, accounts
//! for every scope within them, and says in the plan what it left out ([`Narrowed`]).

use std::collections::BTreeSet;

use lapse_sdk::{Cloud, ScopeError, ScopeId, ScopeKind, ScopeStatus, Snapshot};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::ScopesDocument;
use crate::providers::LiveOptions;

/// A scope a run is about, named by id before anything is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedScope {
    /// Its cloud.
    pub cloud: Cloud,
    /// Its id, as snapshots write it (`aws:111122223333`, `azure:/subscriptions/…`).
    pub id: ScopeId,
    /// What kind of container it is.
    pub kind: ScopeKind,
}

impl NamedScope {
    fn new(id: String) -> Option<NamedScope> {
        let (cloud, kind) = kind_of(&id)?;
        Some(NamedScope {
            cloud,
            id: ScopeId::from(id),
            kind,
        })
    }
}

/// The `operation` of the error that marks a scope no snapshot file covers.
pub const NO_FILE_OPERATION: &str = "snapshot files";

/// True when nothing of this scope was read: no snapshot file covered it. Reports then show no
/// per-kind result for it at all, since a passing check of a scope never read would read as
/// clean.
#[must_use]
pub fn was_not_read(scope: &ScopeStatus) -> bool {
    !scope.complete
        && scope
            .errors
            .iter()
            .any(|error| error.operation == NO_FILE_OPERATION)
}

/// Why a named scope has no reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unread {
    /// A live run: the provider returned nothing for it (a bug: providers return every scope
    /// asked for, incomplete when a read failed).
    ProviderReturnedNothing,
    /// A run over snapshot files: none of the files covers it.
    NoSnapshotFile,
}

/// The cloud and kind of a scope id, from its prefix; `None` for an id of no known form.
#[must_use]
pub fn kind_of(id: &str) -> Option<(Cloud, ScopeKind)> {
    let forms = [
        ("aws:", Cloud::Aws, ScopeKind::Account),
        ("azure:/tenants/", Cloud::Azure, ScopeKind::Tenant),
        (
            "azure:/subscriptions/",
            Cloud::Azure,
            ScopeKind::Subscription,
        ),
        ("gcp:projects/", Cloud::Gcp, ScopeKind::Project),
        ("gcp:folders/", Cloud::Gcp, ScopeKind::Folder),
        ("gcp:organizations/", Cloud::Gcp, ScopeKind::Organization),
    ];
    forms.into_iter().find_map(|(prefix, cloud, kind)| {
        id.strip_prefix(prefix)
            .filter(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
            .map(|_| (cloud, kind))
    })
}

/// Parses a `--scope` value: a scope id as snapshots and reports print it.
///
/// # Errors
/// A sentence listing the forms, for an id of none of them.
pub fn parse_scope(text: &str) -> Result<ScopeId, String> {
    match kind_of(text) {
        Some(_) => Ok(ScopeId::from(text.to_owned())),
        None => Err(format!(
            "`{text}` is not a scope id: give it as reports print it, e.g. aws:111122223333, azure:/tenants/<id>, azure:/subscriptions/<id>, gcp:projects/<id>, gcp:folders/<id> or gcp:organizations/<id>"
        )),
    }
}

/// True when two scope ids name the same scope. Azure ids are case-insensitive (ARM answers
/// with either case); the others are compared exactly.
#[must_use]
pub fn same_scope(left: &str, right: &str) -> bool {
    if left.starts_with("azure:") && right.starts_with("azure:") {
        left.eq_ignore_ascii_case(right)
    } else {
        left == right
    }
}

/// An Entra tenant named by its id (a GUID), not by a domain such as `contoso.onmicrosoft.com`.
fn is_tenant_id(tenant: &str) -> bool {
    let groups: Vec<&str> = tenant.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, length)| {
            group.len() == length && group.chars().all(|c| c.is_ascii_hexdigit())
        })
}

/// The scopes the flags (or, without them, the policy) name by id: what a run must account for.
/// `*` subscriptions and "the caller's own account" name nothing in advance.
#[must_use]
pub fn named_scopes(options: &LiveOptions, scopes: &ScopesDocument) -> Vec<NamedScope> {
    let mut named = Vec::new();
    let mut add = |id: String| {
        if let Some(scope) = NamedScope::new(id) {
            named.push(scope);
        }
    };
    let accounts: Vec<String> = if options.aws.accounts.is_empty() {
        scopes
            .aws
            .iter()
            .map(|scope| scope.account.clone())
            .collect()
    } else {
        options.aws.accounts.clone()
    };
    for account in accounts {
        add(format!("aws:{account}"));
    }
    if options.azure.subscriptions.is_empty() {
        for scope in &scopes.azure {
            if options
                .azure
                .tenant
                .as_ref()
                .is_some_and(|tenant| tenant != &scope.tenant)
            {
                continue;
            }
            add(format!("azure:/tenants/{}", scope.tenant));
            for subscription in scope.subscriptions.iter().filter(|sub| *sub != "*") {
                add(format!("azure:/subscriptions/{subscription}"));
            }
        }
    } else {
        for subscription in options.azure.subscriptions.iter().filter(|sub| *sub != "*") {
            add(format!("azure:/subscriptions/{subscription}"));
        }
    }
    let (projects, folders, organizations) = options.gcp.containers(scopes);
    for project in projects {
        add(format!("gcp:projects/{project}"));
    }
    for folder in folders {
        add(format!("gcp:folders/{folder}"));
    }
    for organization in organizations {
        add(format!("gcp:organizations/{organization}"));
    }
    named
}

/// Adds an incomplete scope for every named scope the snapshot holds no reading of, saying why
/// (`why`), so that "not read" can never turn into "nothing there".
///
/// A tenant the policy names by domain cannot be compared with the tenant id a reading carries:
/// it counts as read when the snapshot holds at least as many tenant readings that no tenant
/// named by id claims as there are tenants named by domain; otherwise every tenant named by
/// domain is reported unread, since which one is missing cannot be told.
#[must_use]
pub fn account_for_every_scope(snapshot: Snapshot, named: &[NamedScope], why: Unread) -> Snapshot {
    add_unread(snapshot, named, why).0
}

/// [`account_for_every_scope`], also returning the ids of the scopes it added.
fn add_unread(
    mut snapshot: Snapshot,
    named: &[NamedScope],
    why: Unread,
) -> (Snapshot, Vec<ScopeId>) {
    let read = |id: &ScopeId, scopes: &[ScopeStatus]| {
        scopes
            .iter()
            .any(|scope| same_scope(scope.id.as_str(), id.as_str()))
    };
    let by_domain: Vec<&NamedScope> = named
        .iter()
        .filter(|scope| {
            scope.kind == ScopeKind::Tenant
                && !read(&scope.id, &snapshot.scopes)
                && scope
                    .id
                    .as_str()
                    .strip_prefix("azure:/tenants/")
                    .is_some_and(|tenant| !is_tenant_id(tenant))
        })
        .collect();
    let unclaimed_tenants = snapshot
        .scopes
        .iter()
        .filter(|scope| scope.cloud == Cloud::Azure && scope.kind == ScopeKind::Tenant)
        .filter(|scope| {
            !named
                .iter()
                .any(|named| same_scope(named.id.as_str(), scope.id.as_str()))
        })
        .count();
    let domains_matched = unclaimed_tenants >= by_domain.len();
    let mut unread = Vec::new();
    for scope in named {
        if read(&scope.id, &snapshot.scopes)
            || unread
                .iter()
                .any(|added: &ScopeStatus| same_scope(added.id.as_str(), scope.id.as_str()))
        {
            continue;
        }
        let named_by_domain = by_domain.iter().any(|domain| domain.id == scope.id);
        if named_by_domain && domains_matched {
            continue;
        }
        let message = match why {
            Unread::ProviderReturnedNothing => format!(
                "the {} provider returned nothing for this scope (a bug in lapse: please report it); nothing in it was read",
                scope.cloud
            ),
            Unread::NoSnapshotFile if named_by_domain && unclaimed_tenants > 0 => "not read: no snapshot file covers it (the policy names this tenant by domain, and no tenant reading is left to match it: name the tenant by its id in `scopes.azure`); give its file, or judge only what the files cover with --provider CLOUD or --scope ID".to_owned(),
            Unread::NoSnapshotFile => "not read: no snapshot file covers it; give its file (`lapse snapshot` writes one per scope), or judge only what the files cover with --provider CLOUD or --scope ID".to_owned(),
        };
        unread.push(ScopeStatus {
            id: scope.id.clone(),
            cloud: scope.cloud,
            kind: scope.kind,
            taken_at: snapshot.taken_at,
            complete: false,
            caller: None,
            caller_identities: Vec::new(),
            errors: vec![ScopeError {
                operation: match why {
                    Unread::ProviderReturnedNothing => "snapshot".to_owned(),
                    Unread::NoSnapshotFile => NO_FILE_OPERATION.to_owned(),
                },
                message,
                missing_permission: None,
            }],
        });
    }
    let ids = unread.iter().map(|scope| scope.id.clone()).collect();
    snapshot.scopes.extend(unread);
    snapshot.scopes.sort_by(|a, b| a.id.cmp(&b.id));
    (snapshot, ids)
}

/// What a file run is narrowed to on purpose: empty means every scope the policy names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// Clouds to judge whole (`--provider`).
    pub clouds: Vec<Cloud>,
    /// Scopes to judge (`--scope`).
    pub scopes: Vec<ScopeId>,
}

impl Narrowing {
    /// True when the run is not narrowed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.clouds.is_empty() && self.scopes.is_empty()
    }

    fn covers(&self, cloud: Cloud, id: &str) -> bool {
        self.clouds.contains(&cloud)
            || self
                .scopes
                .iter()
                .any(|scope| same_scope(scope.as_str(), id))
    }
}

/// A run over snapshot files narrowed on purpose: what it judged, and what it left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Narrowed {
    /// The clouds judged whole (`--provider`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clouds: Vec<Cloud>,
    /// The scopes judged (`--scope`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<ScopeId>,
    /// Scopes the policy names or the files hold that this run did not judge, on purpose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<ScopeId>,
}

impl Narrowed {
    /// One sentence for reports: what was judged and what was left out.
    #[must_use]
    pub fn sentence(&self) -> String {
        let judged: Vec<String> = self
            .clouds
            .iter()
            .map(|cloud| format!("all of {cloud}"))
            .chain(self.scopes.iter().map(ToString::to_string))
            .collect();
        let left_out = if self.left_out.is_empty() {
            "nothing else was named".to_owned()
        } else {
            format!(
                "not judged: {}",
                self.left_out
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "narrowed on purpose (--provider/--scope) to {}; {left_out}",
            judged.join(", ")
        )
    }
}

/// What [`over_files`] found: the scopes no file covers, and what a narrowed run left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileCoverage {
    /// Scopes the run is about that no file covers: now incomplete scopes of the snapshot.
    pub unread: Vec<ScopeId>,
    /// Set when the run was narrowed on purpose.
    pub narrowed: Option<Narrowed>,
}

/// Accounts for every scope of a run over snapshot files: the policy's `scopes`, or, when the
/// run is narrowed, the scopes within the narrowing (and every `--scope`). A narrowed run keeps
/// only the scopes and records within the narrowing, and says what it left out.
#[must_use]
pub fn over_files(
    snapshot: Snapshot,
    scopes: &ScopesDocument,
    narrowing: &Narrowing,
) -> (Snapshot, FileCoverage) {
    // Over files, the live flags do not apply: the policy says what the run is about.
    let named = named_scopes(&LiveOptions::default(), scopes);
    if narrowing.is_empty() {
        let (snapshot, unread) = add_unread(snapshot, &named, Unread::NoSnapshotFile);
        return (
            snapshot,
            FileCoverage {
                unread,
                narrowed: None,
            },
        );
    }
    let mut left_out = BTreeSet::new();
    for scope in &named {
        if !narrowing.covers(scope.cloud, scope.id.as_str()) {
            left_out.insert(scope.id.clone());
        }
    }
    for scope in &snapshot.scopes {
        if !narrowing.covers(scope.cloud, scope.id.as_str()) {
            left_out.insert(scope.id.clone());
        }
    }
    let mut wanted: Vec<NamedScope> = named
        .into_iter()
        .filter(|scope| narrowing.covers(scope.cloud, scope.id.as_str()))
        .collect();
    wanted.extend(
        narrowing
            .scopes
            .iter()
            .filter_map(|id| NamedScope::new(id.as_str().to_owned())),
    );
    let mut snapshot = snapshot;
    let keep = |cloud: Cloud, scope: &ScopeId| narrowing.covers(cloud, scope.as_str());
    snapshot.scopes.retain(|scope| keep(scope.cloud, &scope.id));
    snapshot
        .principals
        .retain(|principal| keep(principal.cloud, &principal.scope));
    snapshot
        .credentials
        .retain(|credential| keep(credential.cloud, &credential.scope));
    snapshot
        .grants
        .retain(|grant| keep(grant.cloud, &grant.scope));
    if let Some(earliest) = snapshot.scopes.iter().map(|scope| scope.taken_at).min() {
        snapshot.taken_at = earliest;
    }
    let mut clouds = narrowing.clouds.clone();
    clouds.sort();
    clouds.dedup();
    let mut judged = narrowing.scopes.clone();
    judged.sort();
    judged.dedup();
    let (snapshot, unread) = add_unread(snapshot, &wanted, Unread::NoSnapshotFile);
    (
        snapshot,
        FileCoverage {
            unread,
            narrowed: Some(Narrowed {
                clouds,
                scopes: judged,
                left_out: left_out.into_iter().collect(),
            }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{AzureOptions, GcpOptions};

    fn scopes(yaml: &str) -> ScopesDocument {
        serde_yaml::from_str(yaml).expect("scopes")
    }

    fn snapshot(scopes: &[(&str, &str, &str)]) -> Snapshot {
        let scopes: Vec<String> = scopes
            .iter()
            .map(|(id, cloud, kind)| {
                format!(
                    r#"{{"id":"{id}","cloud":"{cloud}","kind":"{kind}","taken_at":"2026-11-20T06:00:00Z","complete":true}}"#
                )
            })
            .collect();
        serde_json::from_str(&format!(
            r#"{{"format":"lapse-snapshot","version":1,"taken_at":"2026-11-20T06:00:00Z",
                "scopes":[{}],"principals":[],"credentials":[],"grants":[]}}"#,
            scopes.join(",")
        ))
        .expect("snapshot")
    }

    fn states(snapshot: &Snapshot) -> Vec<(&str, bool)> {
        snapshot
            .scopes
            .iter()
            .map(|scope| (scope.id.as_str(), scope.complete))
            .collect()
    }

    const DEMO: &str = "aws: [{account: '111122223333'}]\nazure: [{tenant: contoso.onmicrosoft.com, subscriptions: [3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17]}]\ngcp: [{project: acme-prod}]\n";

    #[test]
    fn a_named_scope_a_provider_left_out_comes_back_incomplete() {
        let named = named_scopes(
            &LiveOptions::default(),
            &scopes(
                "aws: [{account: '111122223333'}]\nazure: [{tenant: 4f9b2c1d-8a3e-4d5b-9c7f-2e1a6b3d8c90, subscriptions: ['*', s1]}]\ngcp: [{project: acme-prod}, {folder: '42'}]\n",
            ),
        );
        let ids: Vec<&str> = named.iter().map(|scope| scope.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "aws:111122223333",
                "azure:/tenants/4f9b2c1d-8a3e-4d5b-9c7f-2e1a6b3d8c90",
                "azure:/subscriptions/s1",
                "gcp:projects/acme-prod",
                "gcp:folders/42"
            ]
        );
        let aws_and_azure: Vec<NamedScope> = named
            .into_iter()
            .filter(|scope| scope.cloud != Cloud::Gcp)
            .collect();
        let accounted = account_for_every_scope(
            snapshot(&[("aws:111122223333", "aws", "account")]),
            &aws_and_azure,
            Unread::ProviderReturnedNothing,
        );
        assert!(!accounted.is_complete());
        assert_eq!(
            states(&accounted),
            [
                ("aws:111122223333", true),
                ("azure:/subscriptions/s1", false),
                ("azure:/tenants/4f9b2c1d-8a3e-4d5b-9c7f-2e1a6b3d8c90", false)
            ]
        );
        assert!(
            accounted.scopes[1].errors[0]
                .message
                .contains("a bug in lapse")
        );
    }

    #[test]
    fn flags_name_the_scopes_instead_of_the_policy() {
        let options = LiveOptions {
            azure: AzureOptions {
                subscriptions: vec!["s9".to_owned()],
                ..AzureOptions::default()
            },
            gcp: GcpOptions {
                projects: vec!["other".to_owned()],
                ..GcpOptions::default()
            },
            ..LiveOptions::default()
        };
        let named = named_scopes(
            &options,
            &scopes("azure: [{tenant: t1, subscriptions: [s1]}]\ngcp: [{project: acme-prod}]\n"),
        );
        let ids: Vec<&str> = named.iter().map(|scope| scope.id.as_str()).collect();
        assert_eq!(ids, ["azure:/subscriptions/s9", "gcp:projects/other"]);
    }

    #[test]
    fn files_that_leave_out_clouds_the_policy_names_make_those_scopes_unread() {
        let (accounted, coverage) = over_files(
            snapshot(&[("aws:111122223333", "aws", "account")]),
            &scopes(DEMO),
            &Narrowing::default(),
        );
        assert_eq!(coverage.narrowed, None);
        assert_eq!(coverage.unread.len(), 3);
        assert_eq!(
            states(&accounted),
            [
                ("aws:111122223333", true),
                (
                    "azure:/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17",
                    false
                ),
                ("azure:/tenants/contoso.onmicrosoft.com", false),
                ("gcp:projects/acme-prod", false)
            ]
        );
        for scope in accounted.scopes.iter().filter(|scope| !scope.complete) {
            assert!(
                scope.errors[0]
                    .message
                    .starts_with("not read: no snapshot file covers it"),
                "{scope:?}"
            );
            assert!(was_not_read(scope));
        }
    }

    #[test]
    fn a_tenant_named_by_domain_is_matched_to_the_one_tenant_read() {
        let all = snapshot(&[
            ("aws:111122223333", "aws", "account"),
            (
                "azure:/tenants/4f9b2c1d-8a3e-4d5b-9c7f-2e1a6b3d8c90",
                "azure",
                "tenant",
            ),
            (
                "azure:/subscriptions/3C1F8E2A-7B4D-4E9A-A1C5-9D2F6E8B0A17",
                "azure",
                "subscription",
            ),
            ("gcp:projects/acme-prod", "gcp", "project"),
        ]);
        let (accounted, _) = over_files(all, &scopes(DEMO), &Narrowing::default());
        assert!(accounted.is_complete(), "{:?}", states(&accounted));
        assert_eq!(accounted.scopes.len(), 4);

        // Two tenants named by domain, one tenant read: which one is missing cannot be told.
        let (accounted, _) = over_files(
            snapshot(&[(
                "azure:/tenants/4f9b2c1d-8a3e-4d5b-9c7f-2e1a6b3d8c90",
                "azure",
                "tenant",
            )]),
            &scopes("azure: [{tenant: contoso.onmicrosoft.com}, {tenant: fabrikam.com}]\n"),
            &Narrowing::default(),
        );
        let unread: Vec<&str> = accounted
            .scopes
            .iter()
            .filter(|scope| !scope.complete)
            .map(|scope| scope.id.as_str())
            .collect();
        assert_eq!(
            unread,
            [
                "azure:/tenants/contoso.onmicrosoft.com",
                "azure:/tenants/fabrikam.com"
            ]
        );
        assert!(accounted.scopes[1].errors[0].message.contains("by domain"));
    }

    #[test]
    fn a_narrowed_run_judges_only_what_it_names_and_says_what_it_left_out() {
        let mut files = snapshot(&[
            ("aws:111122223333", "aws", "account"),
            ("aws:444455556666", "aws", "account"),
            ("gcp:projects/acme-prod", "gcp", "project"),
        ]);
        files.grants = serde_json::from_str(
            r#"[{"id":"g1","cloud":"aws","scope":"aws:111122223333","principal":"p","entitlement":"e","resource":"r","kind":"managed-policy"},
                {"id":"g2","cloud":"gcp","scope":"gcp:projects/acme-prod","principal":"p","entitlement":"e","resource":"r","kind":"iam-binding"}]"#,
        )
        .expect("grants");
        let (accounted, coverage) = over_files(
            files.clone(),
            &scopes(DEMO),
            &Narrowing {
                clouds: vec![Cloud::Aws],
                scopes: Vec::new(),
            },
        );
        assert_eq!(
            states(&accounted),
            [("aws:111122223333", true), ("aws:444455556666", true)]
        );
        assert_eq!(accounted.grants.len(), 1);
        assert!(coverage.unread.is_empty());
        let narrowed = coverage.narrowed.expect("narrowed");
        assert_eq!(narrowed.clouds, [Cloud::Aws]);
        let left_out: Vec<&str> = narrowed.left_out.iter().map(ScopeId::as_str).collect();
        assert_eq!(
            left_out,
            [
                "azure:/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17",
                "azure:/tenants/contoso.onmicrosoft.com",
                "gcp:projects/acme-prod"
            ]
        );
        assert!(narrowed.sentence().contains("all of aws"));

        // A scope named with --scope and covered by no file is unread, not left out.
        let (accounted, coverage) = over_files(
            files,
            &scopes(DEMO),
            &Narrowing {
                clouds: Vec::new(),
                scopes: vec![
                    ScopeId::from("aws:111122223333"),
                    ScopeId::from("gcp:projects/other"),
                ],
            },
        );
        assert_eq!(
            states(&accounted),
            [("aws:111122223333", true), ("gcp:projects/other", false)]
        );
        assert_eq!(coverage.unread, [ScopeId::from("gcp:projects/other")]);
        let narrowed = coverage.narrowed.expect("narrowed");
        assert!(
            narrowed
                .left_out
                .contains(&ScopeId::from("aws:444455556666"))
        );
    }

    #[test]
    fn scope_ids_are_parsed_by_their_form() {
        for good in [
            "aws:111122223333",
            "azure:/tenants/t",
            "azure:/subscriptions/s",
            "gcp:projects/p",
            "gcp:folders/1",
            "gcp:organizations/2",
        ] {
            assert!(parse_scope(good).is_ok(), "{good}");
        }
        for bad in ["111122223333", "aws:", "azure:/resourceGroups/x", "gcp:p"] {
            let error = parse_scope(bad).expect_err(bad);
            assert!(error.contains("aws:111122223333"), "{error}");
        }
    }
}
