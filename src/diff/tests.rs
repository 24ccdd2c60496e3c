//! One test per finding kind and per step of the decision order, on hand-built estates.

use std::path::PathBuf;

use lapse_sdk::{
    ActionKind, Cloud, Credential, CredentialKind, CredentialStatus, ExpirySource, Grant,
    GrantKind, Principal, PrincipalKind, ScopeKind, ScopeStatus, Snapshot, Timestamp, Usage, Via,
};

use super::{Memory, evaluate};
use crate::finding::{AgeSource, Finding, FindingKind, Severity};
use crate::policy::{Policy, from_sources};

const NOW: &str = "2026-11-20T06:00:00Z";

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("timestamp")
}

fn days_ago(days: i64) -> Timestamp {
    at(NOW).plus_seconds(-days * 86_400)
}

fn policy(yaml: &str) -> Policy {
    from_sources(&[(PathBuf::from("policy.yaml"), format!("version: 1\n{yaml}"))])
        .expect("valid policy")
}

fn principal(id: &str, kind: PrincipalKind) -> Principal {
    Principal {
        unique_id: None,
        id: id.into(),
        cloud: Cloud::Aws,
        scope: "aws:111122223333".into(),
        kind,
        native_type: None,
        display_name: None,
        created_at: Some(days_ago(400)),
        last_activity: Usage::Unknown,
        owner: Some("platform".to_owned()),
        tags: Default::default(),
        enabled: true,
        cloud_managed: false,
        federation_available: false,
    }
}

fn grant(principal: &str, entitlement: &str) -> Grant {
    Grant {
        id: format!("{principal}|{entitlement}").into(),
        cloud: Cloud::Aws,
        scope: "aws:111122223333".into(),
        principal: principal.into(),
        entitlement: entitlement.to_owned(),
        entitlement_id: None,
        resource: "111122223333".to_owned(),
        kind: GrantKind::ManagedPolicy,
        via: Via::Direct,
        created_at: None,
        expires_at: None,
        expiry_source: None,
        condition: None,
        privileged: false,
    }
}

fn key(id: &str, principal: &str, created_days_ago: i64, last_used: Usage) -> Credential {
    Credential {
        id: id.into(),
        principal: principal.into(),
        cloud: Cloud::Aws,
        scope: "aws:111122223333".into(),
        kind: CredentialKind::AwsAccessKey,
        display_name: None,
        created_at: Some(days_ago(created_days_ago)),
        expires_at: None,
        last_used,
        status: CredentialStatus::Active,
        cloud_managed: false,
    }
}

fn snapshot(
    principals: Vec<Principal>,
    credentials: Vec<Credential>,
    grants: Vec<Grant>,
) -> Snapshot {
    let mut snapshot = Snapshot::empty(at(NOW));
    snapshot.scopes.push(ScopeStatus {
        caller_identities: Vec::new(),
        id: "aws:111122223333".into(),
        cloud: Cloud::Aws,
        kind: ScopeKind::Account,
        taken_at: at(NOW),
        complete: true,
        caller: Some("arn:aws:iam::111122223333:role/lapse-read".to_owned()),
        errors: Vec::new(),
    });
    snapshot.principals = principals;
    snapshot.credentials = credentials;
    snapshot.grants = grants;
    snapshot
}

fn run(snapshot: &Snapshot, policy: &Policy) -> Vec<Finding> {
    evaluate(snapshot, policy, &Memory::default(), at(NOW)).findings
}

fn kinds(findings: &[Finding]) -> Vec<FindingKind> {
    findings.iter().map(|finding| finding.kind).collect()
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const READ: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const DEPLOYER: &str = "arn:aws:iam::111122223333:role/deployer";

#[test]
fn an_undeclared_admin_attachment_is_standing_privilege_and_revoked() {
    let estate = snapshot(
        vec![principal(DEPLOYER, PrincipalKind::Role)],
        vec![],
        vec![grant(DEPLOYER, ADMIN)],
    );
    let findings = run(&estate, &policy(""));
    assert_eq!(kinds(&findings), [FindingKind::StandingPrivilege]);
    assert_eq!(findings[0].severity, Severity::High);
    assert_eq!(findings[0].action.kind, Some(ActionKind::RevokeGrant));
    assert!(findings[0].action.is_planned());
    assert_eq!(
        findings[0].evidence.age.map(|age| age.source),
        Some(AgeSource::Unknown)
    );
}

#[test]
fn an_undeclared_ordinary_grant_is_reported_not_revoked() {
    let estate = snapshot(
        vec![principal(DEPLOYER, PrincipalKind::Role)],
        vec![],
        vec![grant(DEPLOYER, READ)],
    );
    let findings = run(&estate, &policy(""));
    assert_eq!(kinds(&findings), [FindingKind::UndeclaredGrant]);
    assert_eq!(findings[0].action.kind, None);
}

#[test]
fn a_declared_current_grant_is_compliant_and_an_expired_declaration_is_drift() {
    let estate = snapshot(
        vec![principal(DEPLOYER, PrincipalKind::Role)],
        vec![],
        vec![grant(DEPLOYER, ADMIN)],
    );
    let current = policy(&format!(
        "grants:\n  - {{principal: '{DEPLOYER}', entitlement: '{ADMIN}', expires: 2027-01-01}}\n"
    ));
    assert!(run(&estate, &current).is_empty());
    let lapsed = policy(&format!(
        "grants:\n  - {{principal: '{DEPLOYER}', entitlement: '{ADMIN}', expires: 2026-10-01, ticket: SEC-1, approved_by: alice}}\n"
    ));
    let findings = run(&estate, &lapsed);
    assert_eq!(kinds(&findings), [FindingKind::DeclaredGrantExpired]);
    assert!(
        findings[0].evidence.summary.contains("SEC-1"),
        "{}",
        findings[0].evidence.summary
    );
    assert_eq!(
        findings[0]
            .evidence
            .decided_by
            .origin()
            .map(|origin| origin.line),
        Some(3)
    );
}

#[test]
fn declarations_match_by_glob_and_display_name() {
    let mut role = principal(DEPLOYER, PrincipalKind::Role);
    role.display_name = Some("deployer".to_owned());
    let estate = snapshot(
        vec![role],
        vec![],
        vec![grant(DEPLOYER, ADMIN), grant(DEPLOYER, READ)],
    );
    let declared =
        policy("grants:\n  - {principal: deployer, entitlement: 'arn:aws:iam::aws:policy/*'}\n");
    assert!(run(&estate, &declared).is_empty());
}

#[test]
fn a_declared_max_ttl_is_exceeded_only_when_the_age_is_known() {
    let mut old = grant(DEPLOYER, ADMIN);
    old.created_at = Some(days_ago(2));
    let declared = policy(&format!(
        "grants:\n  - {{principal: '{DEPLOYER}', entitlement: '{ADMIN}', max_ttl: 8h}}\n"
    ));
    let findings = run(&snapshot(vec![], vec![], vec![old]), &declared);
    assert_eq!(kinds(&findings), [FindingKind::TtlExceeded]);
    // Unknown age: not guessed, not flagged.
    let findings = run(
        &snapshot(vec![], vec![], vec![grant(DEPLOYER, ADMIN)]),
        &declared,
    );
    assert!(findings.is_empty());
}

#[test]
fn a_ttl_rule_allows_young_grants_and_revokes_old_ones() {
    let jit = policy("rules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h}\n");
    let mut young = grant(DEPLOYER, ADMIN);
    young.created_at = Some(at(NOW).plus_seconds(-3_600));
    assert!(run(&snapshot(vec![], vec![], vec![young]), &jit).is_empty());

    let mut old = grant(DEPLOYER, ADMIN);
    old.created_at = Some(days_ago(1));
    let findings = run(&snapshot(vec![], vec![], vec![old]), &jit);
    assert_eq!(kinds(&findings), [FindingKind::TtlExceeded]);
    assert!(findings[0].action.is_planned());
    assert_eq!(findings[0].evidence.decided_by.rule_id(), Some("jit"));
}

#[test]
fn unknown_age_under_a_ttl_rule_is_reported_and_held_unless_the_rule_says_revoke() {
    let estate = snapshot(vec![], vec![], vec![grant(DEPLOYER, ADMIN)]);
    let hold = policy("rules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h}\n");
    let findings = run(&estate, &hold);
    assert_eq!(kinds(&findings), [FindingKind::StandingPrivilege]);
    assert!(
        findings[0]
            .evidence
            .summary
            .contains("age unknown, first seen now (2026-11-20T06:00:00Z): no earlier record")
    );
    assert!(findings[0].action.held.is_some());
    assert!(!findings[0].action.is_planned());

    let revoke = policy(
        "rules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h, unknown_age: revoke}\n",
    );
    assert!(run(&estate, &revoke)[0].action.is_planned());
}

#[test]
fn first_seen_memory_gives_an_age_when_the_cloud_does_not() {
    let estate = snapshot(vec![], vec![], vec![grant(DEPLOYER, ADMIN)]);
    let jit = policy("rules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h}\n");
    let mut memory = Memory::default();
    memory
        .first_seen
        .insert(estate.grants[0].id.clone(), days_ago(3));
    let findings = evaluate(&estate, &jit, &memory, at(NOW)).findings;
    assert_eq!(kinds(&findings), [FindingKind::TtlExceeded]);
    assert_eq!(
        findings[0].evidence.age.map(|age| age.source),
        Some(AgeSource::FirstSeen)
    );
}

#[test]
fn a_grant_past_its_own_expiry_is_an_expired_binding_even_when_declared() {
    let mut binding = grant(
        "serviceAccount:ci@acme-prod.iam.gserviceaccount.com",
        "roles/editor",
    );
    binding.cloud = Cloud::Gcp;
    binding.expires_at = Some(days_ago(5));
    binding.expiry_source = Some(ExpirySource::Condition);
    let declared = policy(
        "grants:\n  - {principal: 'ci@acme-prod.iam.gserviceaccount.com', entitlement: roles/editor}\n",
    );
    let findings = run(&snapshot(vec![], vec![], vec![binding]), &declared);
    assert_eq!(kinds(&findings), [FindingKind::ExpiredBinding]);
    assert!(findings[0].evidence.summary.contains("IAM condition"));
    assert!(findings[0].action.is_planned());
}

#[test]
fn a_time_bound_privileged_grant_is_not_standing() {
    let mut pim = grant(DEPLOYER, ADMIN);
    pim.expires_at = Some(at(NOW).plus_seconds(3_600));
    assert!(run(&snapshot(vec![], vec![], vec![pim]), &policy("")).is_empty());
}

#[test]
fn the_default_window_separates_jit_from_standing() {
    let window = policy("defaults: {grant_max_ttl: 8h}\n");
    let mut fresh = grant(DEPLOYER, ADMIN);
    fresh.created_at = Some(at(NOW).plus_seconds(-600));
    assert!(run(&snapshot(vec![], vec![], vec![fresh]), &window).is_empty());
    let mut old = grant(DEPLOYER, ADMIN);
    old.created_at = Some(days_ago(30));
    let findings = run(&snapshot(vec![], vec![], vec![old]), &window);
    assert_eq!(kinds(&findings), [FindingKind::StandingPrivilege]);
    assert!(
        findings[0].evidence.summary.contains("30d"),
        "{}",
        findings[0].evidence.summary
    );
}

#[test]
fn protected_principals_get_no_findings_and_are_listed() {
    let estate = snapshot(
        vec![principal(
            "arn:aws:iam::111122223333:role/OrganizationAccountAccessRole",
            PrincipalKind::Role,
        )],
        vec![],
        vec![
            grant(
                "arn:aws:iam::111122223333:role/OrganizationAccountAccessRole",
                ADMIN,
            ),
            grant("arn:aws:iam::111122223333:role/lapse-read", READ),
            grant("arn:aws:iam::111122223333:role/break-glass", ADMIN),
        ],
    );
    let by_policy = policy("protect:\n  - principal: '*break-glass'\n");
    let evaluation = evaluate(&estate, &by_policy, &Memory::default(), at(NOW));
    assert!(
        evaluation.findings.is_empty(),
        "{:?}",
        kinds(&evaluation.findings)
    );
    assert_eq!(evaluation.counts.protected_grants, 3);
    let reasons: Vec<&str> = evaluation
        .protected
        .iter()
        .map(|entry| entry.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "built-in: AWS Organizations access role",
            "protected by policy",
            "lapse's own caller identity"
        ]
    );
    assert_eq!(
        evaluation.protected[1]
            .origin
            .as_ref()
            .map(|origin| origin.line),
        Some(3)
    );
}

#[test]
fn protection_by_tags_covers_credentials_too() {
    let mut glass = principal("arn:aws:iam::111122223333:user/glass", PrincipalKind::Human);
    glass
        .tags
        .insert("break-glass".to_owned(), "true".to_owned());
    let estate = snapshot(
        vec![glass],
        vec![key(
            "AKIA-OLD",
            "arn:aws:iam::111122223333:user/glass",
            400,
            Usage::Never,
        )],
        vec![grant("arn:aws:iam::111122223333:user/glass", ADMIN)],
    );
    let tagged =
        policy("defaults: {credential_max_age: 90d}\nprotect:\n  - tags: {break-glass: 'true'}\n");
    assert!(run(&estate, &tagged).is_empty());
}

#[test]
fn each_key_is_judged_on_its_own() {
    let user = "arn:aws:iam::111122223333:user/batch";
    let estate = snapshot(
        vec![principal(user, PrincipalKind::Workload)],
        vec![
            key("AKIA-OLD-UNUSED", user, 200, Usage::Never),
            key("AKIA-NEW", user, 10, Usage::At(days_ago(1))),
        ],
        vec![],
    );
    let hygiene = policy("defaults: {credential_max_age: 90d, credential_max_idle: 45d}\n");
    let findings = run(&estate, &hygiene);
    let subjects: Vec<(&str, FindingKind)> = findings
        .iter()
        .map(|finding| (finding.subject.id.as_str(), finding.kind))
        .collect();
    assert_eq!(
        subjects,
        [
            ("AKIA-OLD-UNUSED", FindingKind::CredentialTooOld),
            ("AKIA-OLD-UNUSED", FindingKind::CredentialIdle)
        ]
    );
    assert!(
        findings
            .iter()
            .all(|finding| finding.action.kind == Some(ActionKind::DeactivateCredential))
    );
}

#[test]
fn a_new_never_used_key_is_not_idle_before_max_idle() {
    let user = "arn:aws:iam::111122223333:user/batch";
    let estate = snapshot(
        vec![],
        vec![key("AKIA-FRESH", user, 10, Usage::Never)],
        vec![],
    );
    assert!(run(&estate, &policy("defaults: {credential_max_idle: 45d}\n")).is_empty());
}

#[test]
fn unknown_last_use_is_never_read_as_idle() {
    let user = "arn:aws:iam::111122223333:user/batch";
    let estate = snapshot(
        vec![],
        vec![key("AKIA-UNKNOWN", user, 60, Usage::Unknown)],
        vec![],
    );
    assert!(run(&estate, &policy("defaults: {credential_max_idle: 45d}\n")).is_empty());
}

#[test]
fn rules_replace_defaults_for_the_credentials_they_match() {
    let user = "arn:aws:iam::111122223333:user/batch";
    let estate = snapshot(
        vec![],
        vec![key("AKIA-1", user, 40, Usage::At(days_ago(1)))],
        vec![],
    );
    let strict = policy(
        "defaults: {credential_max_age: 90d}\nrules:\n  - {id: strict-keys, match: {credential: aws-access-key}, max_age: 30d, action: report}\n",
    );
    let findings = run(&estate, &strict);
    assert_eq!(kinds(&findings), [FindingKind::CredentialTooOld]);
    assert_eq!(
        findings[0].evidence.decided_by.rule_id(),
        Some("strict-keys")
    );
    assert_eq!(findings[0].action.kind, None);
}

#[test]
fn an_idle_principal_is_reported_and_unknown_activity_is_not() {
    let mut idle = principal("arn:aws:iam::111122223333:user/old", PrincipalKind::Human);
    idle.last_activity = Usage::At(days_ago(200));
    let mut unknown = principal(
        "arn:aws:iam::111122223333:user/unknown",
        PrincipalKind::Human,
    );
    unknown.last_activity = Usage::Unknown;
    let findings = run(
        &snapshot(vec![idle, unknown], vec![], vec![]),
        &policy("defaults: {principal_max_idle: 90d}\n"),
    );
    assert_eq!(kinds(&findings), [FindingKind::PrincipalIdle]);
    assert_eq!(findings[0].subject.id, "arn:aws:iam::111122223333:user/old");
}

#[test]
fn a_workload_without_owner_anywhere_is_unowned() {
    let mut orphan = principal(
        "arn:aws:iam::111122223333:user/orphan",
        PrincipalKind::Workload,
    );
    orphan.owner = None;
    let mut tagged = principal(
        "arn:aws:iam::111122223333:user/tagged",
        PrincipalKind::Workload,
    );
    tagged.owner = None;
    tagged
        .tags
        .insert("owner".to_owned(), "data-team".to_owned());
    let mut listed = principal(
        "arn:aws:iam::111122223333:user/listed",
        PrincipalKind::Workload,
    );
    listed.owner = None;
    let mut human = principal("arn:aws:iam::111122223333:user/ana", PrincipalKind::Human);
    human.owner = None;
    let owners = policy("owners:\n  - {principal: '*listed', owner: sre}\n");
    let findings = run(
        &snapshot(vec![orphan, tagged, listed, human], vec![], vec![]),
        &owners,
    );
    assert_eq!(kinds(&findings), [FindingKind::Unowned]);
    assert_eq!(
        findings[0].subject.id,
        "arn:aws:iam::111122223333:user/orphan"
    );
}

#[test]
fn a_secret_where_federation_exists_is_a_static_credential() {
    let mut app = principal(
        "00000000-0000-0000-0000-0000000000aa",
        PrincipalKind::Workload,
    );
    app.federation_available = true;
    let mut secret = key(
        "11111111-1111-1111-1111-111111111111",
        "00000000-0000-0000-0000-0000000000aa",
        10,
        Usage::Unknown,
    );
    secret.kind = CredentialKind::AzurePassword;
    let findings = run(&snapshot(vec![app], vec![secret], vec![]), &policy(""));
    assert_eq!(kinds(&findings), [FindingKind::StaticCredential]);
    assert_eq!(findings[0].action.kind, None);
}

#[test]
fn a_valid_exception_waives_and_an_expired_one_does_not() {
    let user = "arn:aws:iam::111122223333:user/legacy";
    let estate = snapshot(
        vec![],
        vec![key("AKIA-LEGACY", user, 400, Usage::At(days_ago(1)))],
        vec![],
    );
    let waived = policy(&format!(
        "defaults: {{credential_max_age: 90d}}\nexceptions:\n  - {{rule: defaults, principal: '{user}', until: 2026-12-31, approved_by: bob, reason: vendor migration}}\n"
    ));
    let findings = run(&estate, &waived);
    assert_eq!(kinds(&findings), [FindingKind::CredentialTooOld]);
    let waiver = findings[0].waived.as_ref().expect("waived");
    assert_eq!(waiver.approved_by, "bob");
    assert!(!findings[0].is_open());

    let lapsed = policy(&format!(
        "defaults: {{credential_max_age: 90d}}\nexceptions:\n  - {{kind: credential-too-old, principal: '{user}', until: 2026-06-30, approved_by: bob, reason: vendor migration}}\n"
    ));
    let findings = run(&estate, &lapsed);
    assert_eq!(
        kinds(&findings),
        [FindingKind::CredentialTooOld, FindingKind::ExceptionExpired]
    );
    assert!(findings.iter().all(Finding::is_open));
}

#[test]
fn a_declared_grant_missing_from_a_complete_scope_is_reported_and_not_from_an_incomplete_one() {
    let declared = policy(&format!(
        "grants:\n  - {{principal: '{DEPLOYER}', entitlement: '{ADMIN}'}}\n"
    ));
    let mut estate = snapshot(vec![], vec![], vec![]);
    let findings = run(&estate, &declared);
    assert_eq!(kinds(&findings), [FindingKind::DeclaredMissing]);
    estate.scopes[0].complete = false;
    assert!(
        run(&estate, &declared).is_empty(),
        "an unreadable scope proves nothing missing"
    );
}

#[test]
fn a_group_grant_makes_its_memberships_privileged_and_inherited_grants_are_not_revoked_directly() {
    let group = "arn:aws:iam::111122223333:group/admins";
    let user = "arn:aws:iam::111122223333:user/ana";
    let mut membership = grant(user, group);
    membership.kind = GrantKind::GroupMembership;
    let mut inherited = grant(user, ADMIN);
    inherited.id = "inherited".into();
    inherited.via = Via::Group(group.into());
    let estate = snapshot(
        vec![
            principal(group, PrincipalKind::Group),
            principal(user, PrincipalKind::Human),
        ],
        vec![],
        vec![grant(group, ADMIN), membership, inherited],
    );
    let findings = run(&estate, &policy(""));
    assert_eq!(findings.len(), 3);
    assert!(
        findings
            .iter()
            .all(|finding| finding.kind == FindingKind::StandingPrivilege)
    );
    let inherited = findings
        .iter()
        .find(|finding| finding.subject.id == "inherited")
        .expect("inherited finding");
    assert!(!inherited.action.is_planned());
    assert!(
        inherited
            .action
            .held
            .as_deref()
            .is_some_and(|reason| reason.contains("group"))
    );
}

#[test]
fn finding_ids_are_stable_and_distinct() {
    let estate = snapshot(
        vec![],
        vec![],
        vec![
            grant(DEPLOYER, ADMIN),
            grant(DEPLOYER, "arn:aws:iam::aws:policy/IAMFullAccess"),
        ],
    );
    let first = run(&estate, &policy(""));
    let second = run(&estate, &policy("# a comment moves nothing\n"));
    let ids: Vec<&str> = first.iter().map(|finding| finding.id.as_str()).collect();
    assert_eq!(
        ids,
        second
            .iter()
            .map(|finding| finding.id.as_str())
            .collect::<Vec<_>>()
    );
    assert_ne!(ids[0], ids[1]);
    assert!(ids[0].starts_with("LPS-"));
}

#[test]
fn an_eligibility_has_no_ttl_and_is_never_standing() {
    const OPERATOR: &str = "6a1c2f0e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
    let mut eligible = grant(OPERATOR, "Owner");
    eligible.cloud = Cloud::Azure;
    eligible.kind = GrantKind::PimEligible;
    eligible.created_at = Some(days_ago(262));
    let jit = policy("rules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h}\n");
    let findings = run(&snapshot(vec![], vec![], vec![eligible.clone()]), &jit);
    assert_eq!(kinds(&findings), [FindingKind::UndeclaredGrant]);
    assert_eq!(findings[0].action.kind, None);
    let declared = policy(&format!(
        "grants:\n  - {{principal: '{OPERATOR}', entitlement: Owner, max_ttl: 8h}}\n"
    ));
    assert!(run(&snapshot(vec![], vec![], vec![eligible]), &declared).is_empty());
}

#[test]
fn a_grant_ending_within_the_ttl_window_needs_no_age() {
    let mut conditional = grant("user:ana@acme.example", "roles/owner");
    conditional.cloud = Cloud::Gcp;
    conditional.expires_at = Some(at(NOW).plus_seconds(3 * 3_600));
    conditional.expiry_source = Some(ExpirySource::Condition);
    let jit = policy("rules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h}\n");
    assert!(run(&snapshot(vec![], vec![], vec![conditional.clone()]), &jit).is_empty());
    conditional.expires_at = Some(at(NOW).plus_seconds(30 * 86_400));
    assert_eq!(
        kinds(&run(&snapshot(vec![], vec![], vec![conditional]), &jit)),
        [FindingKind::StandingPrivilege]
    );
}

#[test]
fn standing_privilege_can_be_report_only_for_an_observe_first_rollout() {
    let estate = snapshot(vec![], vec![], vec![grant(DEPLOYER, ADMIN)]);
    let observe = policy("defaults: {standing_privilege: report}\n");
    let findings = run(&estate, &observe);
    assert_eq!(kinds(&findings), [FindingKind::StandingPrivilege]);
    assert_eq!(findings[0].action.kind, None);
}

#[test]
fn rules_can_select_on_grant_kind() {
    let mut active = grant(DEPLOYER, "Owner");
    active.cloud = Cloud::Azure;
    active.kind = GrantKind::PimActive;
    active.created_at = Some(days_ago(1));
    let assignment = {
        let mut assignment = active.clone();
        assignment.id = "assignment".into();
        assignment.kind = GrantKind::RoleAssignment;
        assignment
    };
    let pim_only = policy("rules:\n  - {id: pim, match: {grant_kind: pim-active}, max_ttl: 8h}\n");
    let findings = run(
        &snapshot(vec![], vec![], vec![active, assignment]),
        &pim_only,
    );
    let decided: Vec<(FindingKind, Option<&str>)> = findings
        .iter()
        .map(|finding| (finding.kind, finding.evidence.decided_by.rule_id()))
        .collect();
    assert_eq!(
        decided,
        [
            (FindingKind::StandingPrivilege, None),
            (FindingKind::TtlExceeded, Some("pim"))
        ]
    );
}

#[test]
fn another_accounts_root_trusted_by_a_role_is_not_protected() {
    let mut trust = grant("arn:aws:iam::999988887777:root", DEPLOYER);
    trust.kind = GrantKind::RoleTrust;
    let findings = run(&snapshot(vec![], vec![], vec![trust]), &policy(""));
    assert_eq!(kinds(&findings), [FindingKind::UndeclaredGrant]);
}

/// A key lapse deactivated `days` ago, still inactive.
fn deactivated(days: i64) -> (Snapshot, Memory) {
    let mut retired = key(
        "AKIARETIRED",
        "arn:aws:iam::111122223333:user/batch",
        200,
        Usage::Never,
    );
    retired.status = CredentialStatus::Inactive;
    let mut memory = Memory::default();
    memory
        .deactivated
        .insert(retired.id.clone(), days_ago(days));
    (snapshot(vec![], vec![retired], vec![]), memory)
}

const GRACE: &str = "rules:\n  - {id: keys, match: {credential: aws-access-key}, max_idle: 45d, delete_after: 14d}\n";

#[test]
fn a_key_lapse_deactivated_is_deleted_once_its_grace_period_has_passed() {
    let (estate, memory) = deactivated(15);
    let findings = evaluate(&estate, &policy(GRACE), &memory, at(NOW)).findings;
    assert_eq!(kinds(&findings), [FindingKind::CredentialIdle]);
    assert_eq!(findings[0].action.kind, Some(ActionKind::DeleteCredential));
    assert!(findings[0].action.is_planned());
    assert!(
        findings[0]
            .evidence
            .summary
            .contains("past delete_after 14d"),
        "{}",
        findings[0].evidence.summary
    );

    let (estate, memory) = deactivated(13);
    assert!(
        evaluate(&estate, &policy(GRACE), &memory, at(NOW))
            .findings
            .is_empty(),
        "within the grace period"
    );
    let (estate, _) = deactivated(15);
    assert!(
        evaluate(&estate, &policy(GRACE), &Memory::default(), at(NOW))
            .findings
            .is_empty(),
        "a key lapse did not deactivate is never deleted on its clock"
    );
    let (estate, memory) = deactivated(15);
    let without_opt_in =
        policy("rules:\n  - {id: keys, match: {credential: aws-access-key}, max_idle: 45d}\n");
    assert!(
        evaluate(&estate, &without_opt_in, &memory, at(NOW))
            .findings
            .is_empty(),
        "no delete_after, no deletion"
    );
}

#[test]
fn a_console_password_is_deleted_only_where_a_rule_says_delete() {
    let mut password = key(
        "arn:aws:iam::111122223333:user/ana#console-password",
        "arn:aws:iam::111122223333:user/ana",
        200,
        Usage::Never,
    );
    password.kind = CredentialKind::AwsConsolePassword;
    let estate = snapshot(vec![], vec![password], vec![]);
    let held = run(
        &estate,
        &policy(
            "rules:\n  - {id: passwords, match: {credential: aws-console-password}, max_idle: 90d}\n",
        ),
    );
    assert_eq!(kinds(&held), [FindingKind::CredentialIdle]);
    assert!(
        held[0]
            .action
            .held
            .as_deref()
            .is_some_and(|reason| reason.contains("action: delete")),
        "{:?}",
        held[0].action
    );
    let deleted = run(
        &estate,
        &policy(
            "rules:\n  - {id: passwords, match: {credential: aws-console-password}, max_idle: 90d, action: delete}\n",
        ),
    );
    assert_eq!(deleted[0].action.kind, Some(ActionKind::DeleteCredential));
    assert!(deleted[0].action.is_planned());
}

#[test]
fn entra_secrets_are_removed_only_where_a_rule_says_delete_and_federated_ones_are_deactivated() {
    let credential = |id: &str, kind: CredentialKind| {
        let mut credential = key(
            id,
            "6d1a8e4c-0f3b-4c97-b25e-8a4f2d6c1e39",
            400,
            Usage::Unknown,
        );
        credential.cloud = Cloud::Azure;
        credential.kind = kind;
        credential
    };
    let estate = snapshot(
        vec![],
        vec![
            credential("secret", CredentialKind::AzurePassword),
            credential("certificate", CredentialKind::AzureCertificate),
            credential("federated", CredentialKind::AzureFederated),
        ],
        vec![],
    );
    let findings = run(
        &estate,
        &policy(
            "rules:\n  - {id: entra, match: {credential: [azure-password, azure-certificate, azure-federated]}, max_age: 90d}\n",
        ),
    );
    let by_subject = |id: &str| {
        findings
            .iter()
            .find(|finding| finding.subject.id == id)
            .unwrap_or_else(|| panic!("no finding for {id}: {findings:?}"))
    };
    for held in ["secret", "certificate"] {
        let action = &by_subject(held).action;
        assert!(
            !action.is_planned()
                && action
                    .held
                    .as_deref()
                    .is_some_and(|why| why.contains("action: delete")),
            "{held}: {action:?}"
        );
    }
    let federated = &by_subject("federated").action;
    assert!(federated.is_planned(), "{federated:?}");
    assert_eq!(federated.kind, Some(ActionKind::DeactivateCredential));
    let deleted = run(
        &estate,
        &policy(
            "rules:\n  - {id: entra, match: {credential: azure-password}, max_age: 90d, action: delete}\n",
        ),
    );
    assert_eq!(deleted[0].action.kind, Some(ActionKind::DeleteCredential));
    assert!(deleted[0].action.is_planned());
}
