//! Property tests of the engine's promises, over random small estates and policies.

use std::collections::HashSet;
use std::path::PathBuf;

use lapse_sdk::{
    Action, Cloud, Credential, CredentialKind, CredentialStatus, Grant, GrantKind, Principal,
    PrincipalKind, ScopeKind, ScopeStatus, Snapshot, Timestamp, Usage, Via,
};
use proptest::prelude::*;

use crate::diff::Memory;
use crate::plan::plan;
use crate::policy::{Policy, from_sources};
use crate::report::{Format, RenderOptions, render};

const NOW: i64 = 1_795_500_000;
const DAY: i64 = 86_400;

const PRINCIPALS: [&str; 6] = [
    "arn:aws:iam::111122223333:role/deployer",
    "arn:aws:iam::111122223333:role/analytics",
    "arn:aws:iam::111122223333:user/batch",
    "arn:aws:iam::111122223333:user/ana",
    "arn:aws:iam::111122223333:role/OrganizationAccountAccessRole",
    "arn:aws:iam::111122223333:role/lapse-read",
];
const ENTITLEMENTS: [&str; 4] = [
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/ReadOnlyAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
    "arn:aws:iam::111122223333:policy/app-data",
];
const KINDS: [&str; 4] = [
    "standing-privilege",
    "undeclared-grant",
    "credential-too-old",
    "credential-idle",
];

fn instant(offset_days: i64) -> Timestamp {
    Timestamp::from_unix_seconds(NOW + offset_days * DAY).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[derive(Clone, Debug)]
struct GrantSpec {
    principal: usize,
    entitlement: usize,
    created_days_ago: Option<i64>,
    expires_in_days: Option<i64>,
    inherited: bool,
}

#[derive(Clone, Debug)]
struct CredentialSpec {
    principal: usize,
    created_days_ago: i64,
    last_used_days_ago: Option<Option<i64>>,
    inactive: bool,
}

#[derive(Clone, Debug)]
struct Estate {
    grants: Vec<GrantSpec>,
    credentials: Vec<CredentialSpec>,
    tagged_break_glass: Vec<bool>,
}

#[derive(Clone, Debug)]
struct PolicySpec {
    protect: Vec<usize>,
    declared: Vec<(usize, usize, Option<i64>)>,
    jit_rule: bool,
    key_rule: bool,
    exceptions: Vec<(usize, usize, i64)>,
}

fn grant_spec() -> impl Strategy<Value = GrantSpec> {
    (
        0..PRINCIPALS.len(),
        0..ENTITLEMENTS.len(),
        proptest::option::of(0..400i64),
        proptest::option::of(-30..30i64),
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(principal, entitlement, created_days_ago, expires_in_days, inherited)| GrantSpec {
                principal,
                entitlement,
                created_days_ago,
                expires_in_days,
                inherited,
            },
        )
}

fn credential_spec() -> impl Strategy<Value = CredentialSpec> {
    (
        0..PRINCIPALS.len(),
        0..400i64,
        proptest::option::of(proptest::option::of(0..400i64)),
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(principal, created_days_ago, last_used_days_ago, inactive)| CredentialSpec {
                principal,
                created_days_ago,
                last_used_days_ago,
                inactive,
            },
        )
}

fn estate() -> impl Strategy<Value = Estate> {
    (
        proptest::collection::vec(grant_spec(), 0..16),
        proptest::collection::vec(credential_spec(), 0..8),
        proptest::collection::vec(proptest::bool::weighted(0.2), PRINCIPALS.len()),
    )
        .prop_map(|(grants, credentials, tagged_break_glass)| Estate {
            grants,
            credentials,
            tagged_break_glass,
        })
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    (
        proptest::collection::vec(0..PRINCIPALS.len(), 0..2),
        proptest::collection::vec(
            (
                0..PRINCIPALS.len(),
                0..ENTITLEMENTS.len(),
                proptest::option::of(-30..30i64),
            ),
            0..6,
        ),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec((0..PRINCIPALS.len(), 0..KINDS.len(), -30..30i64), 0..4),
    )
        .prop_map(
            |(protect, declared, jit_rule, key_rule, exceptions)| PolicySpec {
                protect,
                declared,
                jit_rule,
                key_rule,
                exceptions,
            },
        )
}

fn build_snapshot(estate: &Estate) -> Snapshot {
    let mut snapshot = Snapshot::empty(instant(0));
    snapshot.scopes.push(ScopeStatus {
        caller_identities: Vec::new(),
        id: "aws:111122223333".into(),
        cloud: Cloud::Aws,
        kind: ScopeKind::Account,
        taken_at: instant(0),
        complete: true,
        caller: Some(PRINCIPALS[5].to_owned()),
        errors: Vec::new(),
    });
    for (index, id) in PRINCIPALS.iter().enumerate() {
        let mut tags = std::collections::BTreeMap::new();
        if estate.tagged_break_glass[index] {
            tags.insert("break-glass".to_owned(), "true".to_owned());
        }
        snapshot.principals.push(Principal {
            unique_id: None,
            id: (*id).into(),
            cloud: Cloud::Aws,
            scope: "aws:111122223333".into(),
            kind: if id.contains(":user/") {
                PrincipalKind::Workload
            } else {
                PrincipalKind::Role
            },
            native_type: None,
            display_name: None,
            created_at: Some(instant(-500)),
            last_activity: Usage::At(instant(-(index as i64) * 40)),
            owner: None,
            tags,
            enabled: true,
            cloud_managed: false,
            federation_available: index % 2 == 0,
        });
    }
    for (index, spec) in estate.grants.iter().enumerate() {
        snapshot.grants.push(Grant {
            id: format!("grant-{index}").into(),
            cloud: Cloud::Aws,
            scope: "aws:111122223333".into(),
            principal: PRINCIPALS[spec.principal].into(),
            entitlement: ENTITLEMENTS[spec.entitlement].to_owned(),
            entitlement_id: None,
            resource: "111122223333".to_owned(),
            kind: GrantKind::ManagedPolicy,
            via: if spec.inherited {
                Via::Group("arn:aws:iam::111122223333:group/g".into())
            } else {
                Via::Direct
            },
            created_at: spec.created_days_ago.map(|days| instant(-days)),
            expires_at: spec.expires_in_days.map(instant),
            expiry_source: None,
            condition: None,
            privileged: false,
        });
    }
    for (index, spec) in estate.credentials.iter().enumerate() {
        snapshot.credentials.push(Credential {
            id: format!("AKIA-{index}").into(),
            principal: PRINCIPALS[spec.principal].into(),
            cloud: Cloud::Aws,
            scope: "aws:111122223333".into(),
            kind: CredentialKind::AwsAccessKey,
            display_name: None,
            created_at: Some(instant(-spec.created_days_ago)),
            expires_at: None,
            last_used: match spec.last_used_days_ago {
                None => Usage::Unknown,
                Some(None) => Usage::Never,
                Some(Some(days)) => Usage::At(instant(-days.min(spec.created_days_ago))),
            },
            status: if spec.inactive {
                CredentialStatus::Inactive
            } else {
                CredentialStatus::Active
            },
            cloud_managed: false,
        });
    }
    snapshot
}

fn build_policy(spec: &PolicySpec) -> (String, Policy) {
    let mut yaml = String::from(
        "version: 1\ndefaults: {credential_max_age: 90d, credential_max_idle: 45d, principal_max_idle: 90d}\n",
    );
    yaml.push_str("protect:\n  - tags: {break-glass: 'true'}\n");
    for index in &spec.protect {
        yaml.push_str(&format!("  - principal: '{}'\n", PRINCIPALS[*index]));
    }
    if !spec.declared.is_empty() {
        yaml.push_str("grants:\n");
        for (principal, entitlement, expires) in &spec.declared {
            yaml.push_str(&format!(
                "  - principal: '{}'\n    entitlement: '{}'\n",
                PRINCIPALS[*principal], ENTITLEMENTS[*entitlement]
            ));
            if let Some(days) = expires {
                yaml.push_str(&format!("    expires: '{}'\n", instant(*days)));
            }
        }
    }
    if spec.jit_rule || spec.key_rule {
        yaml.push_str("rules:\n");
        if spec.jit_rule {
            yaml.push_str("  - {id: jit, match: {privileged: true}, max_ttl: 8h}\n");
        }
        if spec.key_rule {
            yaml.push_str("  - {id: keys, match: {credential: aws-access-key}, max_age: 30d}\n");
        }
    }
    if !spec.exceptions.is_empty() {
        yaml.push_str("exceptions:\n");
        for (principal, kind, until) in &spec.exceptions {
            yaml.push_str(&format!(
                "  - {{kind: {}, principal: '{}', until: '{}', approved_by: bob, reason: test}}\n",
                KINDS[*kind],
                PRINCIPALS[*principal],
                instant(*until)
            ));
        }
    }
    let policy = from_sources(&[(PathBuf::from("policy.yaml"), yaml.clone())])
        .unwrap_or_else(|error| panic!("{error}\n{yaml}"));
    (yaml, policy)
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_protected_principal_is_never_in_a_plan(estate in estate(), spec in policy_spec()) {
        let snapshot = build_snapshot(&estate);
        let (_, policy) = build_policy(&spec);
        let plan = plan(&snapshot, "digest", &policy, &Memory::default(), instant(0));
        let mut protected: HashSet<&str> = spec.protect.iter().map(|index| PRINCIPALS[*index]).collect();
        protected.insert(PRINCIPALS[4]); // built-in: the Organizations access role
        protected.insert(PRINCIPALS[5]); // the caller
        for (index, tagged) in estate.tagged_break_glass.iter().enumerate() {
            if *tagged {
                protected.insert(PRINCIPALS[index]);
            }
        }
        for change in &plan.actions {
            prop_assert!(!protected.contains(action_principal(&change.action)), "{:?}", change.action);
        }
        let listed: HashSet<&str> = plan.protected.iter().map(|entry| entry.principal.as_str()).collect();
        prop_assert_eq!(listed, protected);
    }

    #[test]
    fn a_declared_unexpired_grant_is_never_revoked(estate in estate(), spec in policy_spec()) {
        let snapshot = build_snapshot(&estate);
        let (_, policy) = build_policy(&spec);
        let plan = plan(&snapshot, "digest", &policy, &Memory::default(), instant(0));
        for change in &plan.actions {
            if let Action::RevokeGrant { grant } = &change.action {
                let own_expiry_passed = grant.expires_at.is_some_and(|expires| expires <= instant(0));
                let declared_current = spec.declared.iter().any(|(principal, entitlement, expires)| {
                    PRINCIPALS[*principal] == grant.principal.as_str()
                        && ENTITLEMENTS[*entitlement] == grant.entitlement
                        && expires.is_none_or(|days| instant(days) > instant(0))
                });
                prop_assert!(own_expiry_passed || !declared_current, "declared, current grant revoked: {:?}", grant);
            }
        }
    }

    #[test]
    fn a_waived_finding_is_never_planned(estate in estate(), spec in policy_spec()) {
        let snapshot = build_snapshot(&estate);
        let (_, policy) = build_policy(&spec);
        let plan = plan(&snapshot, "digest", &policy, &Memory::default(), instant(0));
        let waived: HashSet<&str> = plan.findings.iter().filter(|finding| !finding.is_open()).map(|finding| finding.id.as_str()).collect();
        for change in &plan.actions {
            prop_assert!(!change.finding_ids.is_empty());
            for id in &change.finding_ids {
                prop_assert!(!waived.contains(id.as_str()), "waived finding {id} planned");
            }
        }
    }

    #[test]
    fn the_same_inputs_give_byte_identical_output_in_any_input_order(estate in estate(), spec in policy_spec(), seed in any::<u64>()) {
        let snapshot = build_snapshot(&estate);
        let (_, policy) = build_policy(&spec);
        let render_plan = |snapshot: &Snapshot| {
            let plan = plan(snapshot, "digest", &policy, &Memory::default(), instant(0));
            (render(&plan, Format::Json, &RenderOptions::default()).ok(), render(&plan, Format::Table, &RenderOptions::default()).ok())
        };
        let first = render_plan(&Snapshot::merge(vec![snapshot.clone()]));
        prop_assert_eq!(&first, &render_plan(&Snapshot::merge(vec![snapshot.clone()])));
        // The same records listed in another order give the same bytes.
        let mut shuffled = snapshot.clone();
        let rotate = |length: usize| if length == 0 { 0 } else { (seed as usize) % length };
        let grants = shuffled.grants.len();
        shuffled.grants.rotate_left(rotate(grants));
        shuffled.grants.reverse();
        let credentials = shuffled.credentials.len();
        shuffled.credentials.rotate_left(rotate(credentials));
        shuffled.principals.reverse();
        prop_assert_eq!(&first, &render_plan(&Snapshot::merge(vec![shuffled])));
    }

    #[test]
    fn merging_a_snapshot_with_itself_changes_nothing(estate in estate()) {
        let snapshot = Snapshot::merge(vec![build_snapshot(&estate)]);
        prop_assert_eq!(&Snapshot::merge(vec![snapshot.clone(), snapshot.clone()]), &snapshot);
    }
}
