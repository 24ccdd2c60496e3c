//! The state store on hand-built estates: sightings, removals, completeness, detections,
//! history and grace periods.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use lapse_sdk::{CredentialId, GrantId, PrincipalId, Snapshot, Timestamp};
use serde_json::json;

use super::*;
use crate::plan::Plan;
use crate::policy::{Duration, Policy, from_sources};

const ACCOUNT: &str = "aws:111122223333";
const OTHER: &str = "aws:444455556666";
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const READ: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("timestamp")
}

fn hours(base: &str, hours: i64) -> Timestamp {
    at(base).plus_seconds(hours * 3_600)
}

const T0: &str = "2026-11-20T06:00:00Z";

fn options() -> OpenOptions {
    OpenOptions {
        create: true,
        lock_timeout: StdDuration::ZERO,
    }
}

fn open(path: &Path) -> StateStore {
    StateStore::open(path, options(), &mut |_| {}).expect("open state")
}

fn temp_state() -> (tempfile::TempDir, PathBuf) {
    let folder = tempfile::tempdir().expect("tempdir");
    let path = folder.path().join("nested/state.db");
    (folder, path)
}

/// One grant: (scope, user name, entitlement).
type Held<'a> = (&'a str, &'a str, &'a str);

fn grant_id(scope: &str, user: &str, entitlement: &str) -> String {
    let account = scope.trim_start_matches("aws:");
    format!("arn:aws:iam::{account}:user/{user}|{entitlement}")
}

/// A snapshot of the given scopes (id, complete) holding the given grants, taken at `now`.
fn estate(now: Timestamp, scopes: &[(&str, bool)], grants: &[Held<'_>]) -> Snapshot {
    let scopes: Vec<_> = scopes
        .iter()
        .map(|(id, complete)| {
            json!({"id": id, "cloud": "aws", "kind": "account", "taken_at": now.to_string(),
                   "complete": complete})
        })
        .collect();
    let mut principals = Vec::new();
    let grants: Vec<_> = grants
        .iter()
        .map(|(scope, user, entitlement)| {
            let account = scope.trim_start_matches("aws:");
            let principal = format!("arn:aws:iam::{account}:user/{user}");
            principals.push(json!({"id": principal, "cloud": "aws", "scope": scope,
                                   "kind": "human", "owner": "sre"}));
            json!({"id": grant_id(scope, user, entitlement), "cloud": "aws", "scope": scope,
                   "principal": principal, "entitlement": entitlement, "resource": account,
                   "kind": "managed-policy"})
        })
        .collect();
    principals.sort_by_key(|principal| principal["id"].to_string());
    principals.dedup();
    let document = json!({"format": "lapse-snapshot", "version": 1, "taken_at": now.to_string(),
                          "scopes": scopes, "principals": principals, "grants": grants});
    Snapshot::merge(vec![
        Snapshot::from_json_slice(document.to_string().as_bytes()).expect("snapshot"),
    ])
}

fn policy(yaml: &str) -> Policy {
    from_sources(&[(PathBuf::from("policy.yaml"), format!("version: 1\n{yaml}"))])
        .expect("valid policy")
}

/// Plans `snapshot` with what the store remembers, then records the run.
fn plan_and_record(
    store: &mut StateStore,
    snapshot: &Snapshot,
    policy: &Policy,
    now: Timestamp,
) -> (Plan, RecordedRun) {
    let memory = store.memory(snapshot).expect("memory");
    let plan = crate::plan::plan(snapshot, "sha256:test", policy, &memory, now);
    let recorded = store
        .record_run(&RunInput {
            command: RunCommand::Plan,
            now,
            snapshot,
            snapshot_digest: "sha256:test",
            plan: Some(&plan),
        })
        .expect("record");
    (plan, recorded)
}

fn inventory_run(store: &mut StateStore, snapshot: &Snapshot, now: Timestamp) -> RecordedRun {
    store
        .record_run(&RunInput {
            command: RunCommand::Snapshot,
            now,
            snapshot,
            snapshot_digest: "sha256:test",
            plan: None,
        })
        .expect("record")
}

fn first_seen(store: &StateStore, snapshot: &Snapshot, grant: &str) -> Option<Timestamp> {
    store
        .memory(snapshot)
        .expect("memory")
        .first_seen
        .get(&GrantId::from(grant))
        .copied()
}

#[test]
fn a_new_state_creates_its_folder_and_remembers_nothing_yet() {
    let (_folder, path) = temp_state();
    let store = open(&path);
    assert!(store.is_new());
    assert!(path.exists(), "the folder and file are created");
    let snapshot = estate(at(T0), &[(ACCOUNT, true)], &[(ACCOUNT, "ana", ADMIN)]);
    assert!(
        store
            .memory(&snapshot)
            .expect("memory")
            .first_seen
            .is_empty()
    );
    assert_eq!(store.runs().expect("runs"), 0);
}

#[test]
fn first_seen_is_the_first_runs_time_and_survives_reopening() {
    let (_folder, path) = temp_state();
    let snapshot = estate(at(T0), &[(ACCOUNT, true)], &[(ACCOUNT, "ana", ADMIN)]);
    let recorded = inventory_run(&mut open(&path), &snapshot, at(T0));
    assert_eq!(recorded.id, 1);
    assert_eq!(recorded.first_seen.grants, 1);
    assert_eq!(recorded.first_seen.principals, 1);

    let mut store = open(&path);
    assert!(!store.is_new());
    let grant = grant_id(ACCOUNT, "ana", ADMIN);
    assert_eq!(first_seen(&store, &snapshot, &grant), Some(at(T0)));
    let later = estate(hours(T0, 5), &[(ACCOUNT, true)], &[(ACCOUNT, "ana", ADMIN)]);
    let recorded = inventory_run(&mut store, &later, hours(T0, 5));
    assert_eq!(recorded.first_seen, Inventory::default(), "nothing new");
    assert_eq!(first_seen(&store, &later, &grant), Some(at(T0)), "kept");
}

#[test]
fn a_complete_scan_removes_what_it_lacks_and_an_incomplete_one_removes_nothing() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let both = [(ACCOUNT, true), (OTHER, true)];
    let before = estate(
        at(T0),
        &both,
        &[(ACCOUNT, "ana", ADMIN), (OTHER, "bo", ADMIN)],
    );
    inventory_run(&mut store, &before, at(T0));

    // ACCOUNT read completely without ana's grant; OTHER read incompletely without bo's.
    let after = estate(
        hours(T0, 1),
        &[(ACCOUNT, true), (OTHER, false)],
        &[(ACCOUNT, "cy", READ)],
    );
    let recorded = inventory_run(&mut store, &after, hours(T0, 1));
    assert_eq!(recorded.removed.grants, 1, "ana's grant only");
    assert_eq!(recorded.removed.principals, 1, "ana only");
    assert_eq!(recorded.first_seen.grants, 1, "cy's grant");

    let probe = estate(
        hours(T0, 2),
        &both,
        &[(ACCOUNT, "ana", ADMIN), (OTHER, "bo", ADMIN)],
    );
    assert_eq!(
        first_seen(&store, &probe, &grant_id(ACCOUNT, "ana", ADMIN)),
        None,
        "removed: its first sighting is forgotten"
    );
    assert_eq!(
        first_seen(&store, &probe, &grant_id(OTHER, "bo", ADMIN)),
        Some(at(T0)),
        "an incomplete scope proves nothing gone"
    );
}

#[test]
fn a_scope_not_read_in_a_run_removes_nothing() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    inventory_run(
        &mut store,
        &estate(at(T0), &[(OTHER, true)], &[(OTHER, "bo", ADMIN)]),
        at(T0),
    );
    // A CI matrix job that scanned another account only.
    let recorded = inventory_run(
        &mut store,
        &estate(hours(T0, 1), &[(ACCOUNT, true)], &[]),
        hours(T0, 1),
    );
    assert_eq!(recorded.removed, Inventory::default());
}

#[test]
fn a_grant_that_comes_back_after_removal_is_new_again() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let held = [(ACCOUNT, "ana", ADMIN)];
    inventory_run(
        &mut store,
        &estate(at(T0), &[(ACCOUNT, true)], &held),
        at(T0),
    );
    inventory_run(
        &mut store,
        &estate(hours(T0, 1), &[(ACCOUNT, true)], &[]),
        hours(T0, 1),
    );
    let again = estate(hours(T0, 2), &[(ACCOUNT, true)], &held);
    let recorded = inventory_run(&mut store, &again, hours(T0, 2));
    assert_eq!(recorded.first_seen.grants, 1);
    assert_eq!(
        first_seen(&store, &again, &grant_id(ACCOUNT, "ana", ADMIN)),
        Some(hours(T0, 2))
    );
}

#[test]
fn a_run_older_than_the_last_one_is_refused() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let snapshot = estate(at(T0), &[(ACCOUNT, true)], &[]);
    inventory_run(&mut store, &snapshot, hours(T0, 1));
    let error = store
        .record_run(&RunInput {
            command: RunCommand::Snapshot,
            now: at(T0),
            snapshot: &snapshot,
            snapshot_digest: "sha256:test",
            plan: None,
        })
        .expect_err("older run");
    assert!(matches!(error, Error::StateOutOfOrder { .. }), "{error}");
    assert!(error.to_string().contains("--no-state"));
    // The same instant again is fine: a re-run.
    inventory_run(&mut store, &snapshot, hours(T0, 1));
    assert_eq!(store.runs().expect("runs"), 2);
}

#[test]
fn ages_come_from_first_sight_once_a_run_has_seen_the_grant() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let policy = policy("defaults: {grant_max_ttl: 8h}\n");
    let held = [(ACCOUNT, "ana", ADMIN)];
    let kinds_and_sources = |plan: &Plan| -> Vec<(String, String)> {
        plan.findings
            .iter()
            .filter(|finding| finding.subject.id == grant_id(ACCOUNT, "ana", ADMIN))
            .map(|finding| {
                (
                    finding.kind.as_str().to_owned(),
                    serde_json::to_value(finding.evidence.age)
                        .expect("json")
                        .get("source")
                        .and_then(|source| source.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    };

    let now = at(T0);
    let (plan, _) = plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &held),
        &policy,
        now,
    );
    assert_eq!(
        kinds_and_sources(&plan),
        [("standing-privilege".to_owned(), "unknown".to_owned())],
        "first sight: age unknown, held"
    );
    let now = hours(T0, 2);
    let (plan, _) = plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &held),
        &policy,
        now,
    );
    assert!(kinds_and_sources(&plan).is_empty(), "2h since first seen");
    let now = hours(T0, 9);
    let (plan, _) = plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &held),
        &policy,
        now,
    );
    assert_eq!(
        kinds_and_sources(&plan),
        [("standing-privilege".to_owned(), "first-seen".to_owned())]
    );
}

#[test]
fn a_flagged_grant_that_goes_is_a_revocation_timed_from_its_first_detection() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let policy = policy("");
    let held = [(ACCOUNT, "ana", ADMIN), (ACCOUNT, "bo", READ)];
    let now = at(T0);
    let (plan, _) = plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &held),
        &policy,
        now,
    );
    assert_eq!(plan.summary.by_kind.len(), 2, "standing and undeclared");
    let now = hours(T0, 30);
    let (_, recorded) = plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &held),
        &policy,
        now,
    );
    assert_eq!(recorded.revoked, 0);
    let now = hours(T0, 50);
    let (_, recorded) = plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &[]),
        &policy,
        now,
    );
    assert_eq!(recorded.revoked, 2);

    let history = store.history(None).expect("history");
    assert_eq!(history.runs.len(), 3);
    let last = &history.runs[2];
    assert_eq!(last.revoked.grants, 2);
    assert_eq!(last.revoked.max_seconds_to_revoke, Some(50 * 3_600));
    assert_eq!(last.removed.grants, 2);
    let first = &history.runs[0];
    let standing = first.standing_privilege.expect("planned");
    assert_eq!((standing.grants, standing.ages_known), (1, 0));
    assert_eq!(
        first.findings.as_ref().map(|findings| findings.open),
        Some(2)
    );
}

#[test]
fn a_grant_no_longer_flagged_is_not_counted_as_revoked_when_it_goes() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let held = [(ACCOUNT, "ana", ADMIN)];
    let now = at(T0);
    plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &held),
        &policy(""),
        now,
    );
    let declared = policy(
        "grants:\n  - {principal: 'arn:aws:iam::111122223333:user/ana', entitlement: 'arn:aws:iam::aws:policy/AdministratorAccess', owner: sre}\n",
    );
    let now = hours(T0, 1);
    plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &held),
        &declared,
        now,
    );
    let now = hours(T0, 2);
    let (_, recorded) = plan_and_record(
        &mut store,
        &estate(now, &[(ACCOUNT, true)], &[]),
        &declared,
        now,
    );
    assert_eq!(recorded.removed.grants, 1);
    assert_eq!(
        recorded.revoked, 0,
        "declared before it went: nothing was revoked"
    );
}

#[test]
fn history_since_leaves_out_older_runs_and_renders_both_ways() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    for step in 0..3 {
        let now = hours(T0, step * 24);
        plan_and_record(
            &mut store,
            &estate(now, &[(ACCOUNT, true)], &[(ACCOUNT, "ana", ADMIN)]),
            &policy(""),
            now,
        );
    }
    let history = store.history(Some(hours(T0, 24))).expect("history");
    assert_eq!(
        history.runs.iter().map(|run| run.run).collect::<Vec<_>>(),
        [2, 3]
    );
    let standing = history.runs[1].standing_privilege.expect("planned");
    assert_eq!(standing.max_age_seconds, Some(48 * 3_600));
    let json: serde_json::Value = serde_json::from_str(&history.to_json()).expect("json");
    assert_eq!(json["format"], HISTORY_FORMAT);
    assert_eq!(json["version"], 1);
    let table = history.to_table(100);
    assert!(table.contains("2 run(s) since"), "{table}");
    assert!(table.contains("standing-privilege 1"), "{table}");
    assert!(
        store
            .history(Some(hours(T0, 99)))
            .expect("history")
            .to_table(100)
            .starts_with("No runs recorded since")
    );
}

#[test]
fn a_deactivation_keeps_its_first_time_and_gates_deletion_by_the_grace_period() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let key = CredentialId::from("AKIAEXAMPLE");
    let owner = PrincipalId::from("arn:aws:iam::111122223333:user/legacy");
    assert_eq!(store.deactivation(&key).expect("read"), None);
    store
        .record_deactivation(&key, &owner, at(T0))
        .expect("record");
    let again = store
        .record_deactivation(&key, &owner, hours(T0, 48))
        .expect("record again");
    assert_eq!(
        again.deactivated_at,
        at(T0),
        "a repeat does not restart the clock"
    );
    let grace = Duration::from_seconds(7 * 86_400);
    assert_eq!(again.eligible_for_delete_after(grace), hours(T0, 7 * 24));
    assert!(!again.is_eligible_for_delete(grace, hours(T0, 7 * 24 - 1)));
    assert!(again.is_eligible_for_delete(grace, hours(T0, 7 * 24)));
    assert!(store.clear_deactivation(&key).expect("clear"));
    assert!(!store.clear_deactivation(&key).expect("clear again"));
    assert_eq!(store.deactivation(&key).expect("read"), None);
}

#[test]
fn history_refuses_a_missing_file_and_creates_nothing() {
    let (_folder, path) = temp_state();
    let error = StateStore::open(
        &path,
        OpenOptions {
            create: false,
            lock_timeout: StdDuration::ZERO,
        },
        &mut |_| {},
    )
    .expect_err("missing");
    assert!(matches!(error, Error::StateMissing { .. }), "{error}");
    assert!(!path.parent().expect("folder").exists());
}

#[test]
fn a_second_open_of_a_locked_state_fails_clearly() {
    let (_folder, path) = temp_state();
    let _first = open(&path);
    let error = StateStore::open(&path, options(), &mut |_| {}).expect_err("locked");
    assert!(matches!(error, Error::StateLocked { .. }), "{error}");
}

#[test]
fn memory_holds_the_deactivations_of_keys_still_inactive_and_a_reactivation_forgets_one() {
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let owner = PrincipalId::from("arn:aws:iam::111122223333:user/batch");
    let key = |id: &str, status: &str| {
        json!({"id": id, "principal": owner.as_str(), "cloud": "aws", "scope": ACCOUNT,
               "kind": "aws-access-key", "status": status})
    };
    let document = |status: &str| {
        json!({"format": "lapse-snapshot", "version": 1, "taken_at": T0,
               "scopes": [{"id": ACCOUNT, "cloud": "aws", "kind": "account", "taken_at": T0,
                           "complete": true}],
               "credentials": [key("AKIAONE", status), key("AKIATWO", "inactive")]})
        .to_string()
    };
    let inactive = Snapshot::from_json_slice(document("inactive").as_bytes()).expect("snapshot");
    for id in ["AKIAONE", "AKIATWO"] {
        store
            .record_deactivation(&CredentialId::from(id), &owner, at(T0))
            .expect("record");
    }
    let memory = store.memory(&inactive).expect("memory");
    assert_eq!(memory.deactivated.len(), 2);
    let reactivated = Snapshot::from_json_slice(document("active").as_bytes()).expect("snapshot");
    assert_eq!(
        store
            .memory(&reactivated)
            .expect("memory")
            .deactivated
            .keys()
            .map(CredentialId::as_str)
            .collect::<Vec<_>>(),
        ["AKIATWO"],
        "an active key's grace period does not run"
    );
    assert_eq!(store.forget_reactivated(&reactivated).expect("forget"), 1);
    assert_eq!(
        store
            .deactivation(&CredentialId::from("AKIAONE"))
            .expect("read"),
        None
    );
}

/// ana holding admin, as the cloud describes her: her immutable id and creation time, if given.
fn ana_with_admin(now: Timestamp, unique_id: Option<&str>, created_at: Option<&str>) -> Snapshot {
    let mut snapshot = estate(now, &[(ACCOUNT, true)], &[(ACCOUNT, "ana", ADMIN)]);
    for principal in &mut snapshot.principals {
        principal.unique_id = unique_id.map(str::to_owned);
        principal.created_at = created_at.map(at);
    }
    snapshot
}

/// The kinds of the findings about ana's admin grant.
fn kinds_of_anas_admin(plan: &Plan) -> Vec<&'static str> {
    plan.findings
        .iter()
        .filter(|finding| finding.subject.id == grant_id(ACCOUNT, "ana", ADMIN))
        .map(|finding| finding.kind.as_str())
        .collect()
}

#[test]
fn a_user_deleted_and_re_created_under_the_same_arn_is_not_ttl_exceeded() {
    let policy =
        policy("rules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h, action: revoke}\n");
    let two_days_on = hours(T0, 48);
    // Ten minutes before the second run: ana deleted, re-created, given admin again.
    let recreated_at = "2026-11-22T05:50:00Z";
    for (case, unique_ids, created) in [
        // The immutable id changed: the old first sighting is not hers.
        (
            "immutable id",
            [Some("AIDAANA1"), Some("AIDAANA2")],
            [None, None],
        ),
        // No immutable id, a creation time: no grant is older than its holder.
        (
            "creation time",
            [None, None],
            [Some("2025-03-01T09:00:00Z"), Some(recreated_at)],
        ),
    ] {
        let (_folder, path) = temp_state();
        let mut store = open(&path);
        let before = ana_with_admin(at(T0), unique_ids[0], created[0]);
        let (plan, _) = plan_and_record(&mut store, &before, &policy, at(T0));
        assert_eq!(
            kinds_of_anas_admin(&plan),
            ["standing-privilege"],
            "{case}: first sight"
        );
        let after = ana_with_admin(two_days_on, unique_ids[1], created[1]);
        let (plan, recorded) = plan_and_record(&mut store, &after, &policy, two_days_on);
        let kinds = kinds_of_anas_admin(&plan);
        assert!(!kinds.contains(&"ttl-exceeded"), "{case}: {kinds:?}");
        assert!(
            plan.actions.is_empty(),
            "{case}: nothing is revoked: {:?}",
            plan.actions
        );
        if case == "immutable id" {
            // The old ana and her grant went; the new ones are seen for the first time.
            assert_eq!(recorded.removed.principals, 1, "{case}");
            assert_eq!(recorded.removed.grants, 1, "{case}");
            assert_eq!(recorded.first_seen.grants, 1, "{case}");
            assert_eq!(
                first_seen(&store, &after, &grant_id(ACCOUNT, "ana", ADMIN)),
                Some(two_days_on),
                "{case}: her grant is first seen now"
            );
        } else {
            assert_eq!(
                first_seen(&store, &after, &grant_id(ACCOUNT, "ana", ADMIN)),
                Some(at(recreated_at)),
                "{case}: first seen no earlier than she was created"
            );
        }
    }
}

#[test]
fn the_same_principal_keeps_its_first_sighting() {
    let policy =
        policy("rules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h, action: revoke}\n");
    let (_folder, path) = temp_state();
    let mut store = open(&path);
    let created = Some("2025-03-01T09:00:00Z");
    plan_and_record(
        &mut store,
        &ana_with_admin(at(T0), Some("AIDAANA1"), created),
        &policy,
        at(T0),
    );
    let later = hours(T0, 48);
    let (plan, recorded) = plan_and_record(
        &mut store,
        &ana_with_admin(later, Some("AIDAANA1"), created),
        &policy,
        later,
    );
    assert_eq!(kinds_of_anas_admin(&plan), ["ttl-exceeded"]);
    assert_eq!(recorded.removed, super::history::Inventory::default());
    // A reading without the id (an older snapshot file) proves nothing either way.
    let (plan, _) = plan_and_record(
        &mut store,
        &ana_with_admin(hours(T0, 49), None, created),
        &policy,
        hours(T0, 49),
    );
    assert_eq!(kinds_of_anas_admin(&plan), ["ttl-exceeded"]);
}
