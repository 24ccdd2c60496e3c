//! Recording a run: what was seen, what is gone, what was flagged, all in one transaction.
//!
//! Per principal, credential and grant id the store keeps `first_seen`, `last_seen` and
//! `removed_at`:
//! - a record in the snapshot gets `last_seen = now`; a new one also `first_seen = now`; one that
//!   had been removed starts again (`first_seen = now`, `removed_at` cleared): access granted
//!   anew is new access, as a cloud's own creation time would say;
//! - a record absent from a scope that was read *completely* gets `removed_at = now`. A scope
//!   read incompletely, or not read at all in this run, removes nothing;
//! - a principal whose immutable id changed under the same name was deleted and re-created:
//!   the old one and what the snapshot shows it holding are removed now, and seen afresh.
//!
//! A grant with an open finding gets a detection (the first time it was flagged). When such a
//! grant is removed, the time from its first detection to its removal is recorded as a
//! revocation; when it is seen again with no open finding (declared, waived, back within its
//! window), the detection is dropped, since nothing was revoked.

use std::collections::{BTreeMap, HashMap, HashSet};

use lapse_sdk::{Snapshot, Timestamp};
use rusqlite::{OptionalExtension, Transaction, params};

use super::history::Inventory;
use super::{StateStore, count};
use crate::error::{Error, Result};
use crate::finding::{FindingKind, SubjectType};
use crate::plan::Plan;

/// Which command recorded a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunCommand {
    /// `lapse plan`: a snapshot judged, with findings.
    Plan,
    /// `lapse snapshot`: an inventory only, no findings.
    Snapshot,
}

impl RunCommand {
    /// The command's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RunCommand::Plan => "plan",
            RunCommand::Snapshot => "snapshot",
        }
    }
}

/// What a run hands to the store.
#[derive(Clone, Copy, Debug)]
pub struct RunInput<'a> {
    /// The command.
    pub command: RunCommand,
    /// The run's instant (`--now`, or the clock read by the binary): every time recorded.
    pub now: Timestamp,
    /// What was seen.
    pub snapshot: &'a Snapshot,
    /// The snapshot's digest.
    pub snapshot_digest: &'a str,
    /// The plan made from it, when the command planned.
    pub plan: Option<&'a Plan>,
}

/// What recording a run changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedRun {
    /// The run's number in this state file, from 1.
    pub id: i64,
    /// Records seen for the first time (or again after a removal).
    pub first_seen: Inventory,
    /// Records a complete scan no longer found.
    pub removed: Inventory,
    /// Removed grants that had an open finding.
    pub revoked: u64,
}

const UPSERT: &str = "
INSERT INTO records (kind, id, scope, first_seen, last_seen, removed_at, first_run, last_run, unique_id)
VALUES (?1, ?2, ?3, ?4, ?4, NULL, ?5, ?5, ?6)
ON CONFLICT (kind, id) DO UPDATE SET
    scope      = excluded.scope,
    first_seen = CASE WHEN records.removed_at IS NULL THEN records.first_seen ELSE excluded.first_seen END,
    first_run  = CASE WHEN records.removed_at IS NULL THEN records.first_run ELSE excluded.first_run END,
    last_seen  = excluded.last_seen,
    last_run   = excluded.last_run,
    removed_at = NULL,
    unique_id  = coalesce(excluded.unique_id, records.unique_id)
RETURNING first_run";

impl StateStore {
    /// Records a run. The run's `now` must not be before the last recorded run's: the state
    /// keeps time in one direction.
    ///
    /// # Errors
    /// [`Error::StateOutOfOrder`] for a run older than the last one; [`Error::State`] when a
    /// write fails, in which case nothing of the run is kept.
    pub fn record_run(&mut self, input: &RunInput<'_>) -> Result<RecordedRun> {
        if let Some(last) = self.last_run_at()?
            && input.now < last
        {
            return Err(Error::StateOutOfOrder {
                path: self.path.clone(),
                now: input.now,
                last,
            });
        }
        let path = self.path.clone();
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|source| Error::State {
                path: path.clone(),
                action: "record this run",
                source,
            })?;
        let recorded = write_run(&transaction, input).and_then(|recorded| {
            transaction.commit()?;
            Ok(recorded)
        });
        recorded.map_err(|source| Error::State {
            path,
            action: "record this run",
            source,
        })
    }
}

fn write_run(transaction: &Transaction<'_>, input: &RunInput<'_>) -> rusqlite::Result<RecordedRun> {
    let snapshot = input.snapshot;
    let now = input.now.unix_seconds();
    let run = insert_run(transaction, input)?;
    let (retired, retired_grants) = retire_replaced(transaction, snapshot, now)?;
    let first_seen = record_sightings(transaction, snapshot, run, now)?;
    let (mut removed, mut removed_grants) = record_removals(transaction, snapshot, run, now)?;
    removed.principals += retired.principals;
    removed.credentials += retired.credentials;
    removed.grants += retired.grants;
    removed_grants.extend(retired_grants);
    let revoked = record_revocations(transaction, &removed_grants, run, now)?;
    if let Some(plan) = input.plan {
        write_findings(transaction, run, now, snapshot, plan)?;
    }
    transaction.execute(
        "UPDATE runs SET new_principals = ?2, new_credentials = ?3, new_grants = ?4,
                         removed_principals = ?5, removed_credentials = ?6, removed_grants = ?7
         WHERE id = ?1",
        params![
            run,
            count(first_seen.principals),
            count(first_seen.credentials),
            count(first_seen.grants),
            count(removed.principals),
            count(removed.credentials),
            count(removed.grants),
        ],
    )?;
    Ok(RecordedRun {
        id: run,
        first_seen,
        removed,
        revoked,
    })
}

/// The run's row and its scopes; returns the run's id.
fn insert_run(transaction: &Transaction<'_>, input: &RunInput<'_>) -> rusqlite::Result<i64> {
    let snapshot = input.snapshot;
    transaction.execute(
        "INSERT INTO runs (command, at, snapshot_taken_at, snapshot_digest, policy_digest,
                           complete, scopes, incomplete_scopes, principals, credentials, grants)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            input.command.as_str(),
            input.now.unix_seconds(),
            snapshot.taken_at.unix_seconds(),
            input.snapshot_digest,
            input.plan.map(|plan| plan.policy.digest.as_str()),
            snapshot.is_complete(),
            count(snapshot.scopes.len()),
            count(
                snapshot
                    .scopes
                    .iter()
                    .filter(|scope| !scope.complete)
                    .count()
            ),
            count(snapshot.principals.len()),
            count(snapshot.credentials.len()),
            count(snapshot.grants.len()),
        ],
    )?;
    let run = transaction.last_insert_rowid();
    let mut scope_row = transaction.prepare_cached(
        "INSERT OR REPLACE INTO run_scopes (run_id, scope, cloud, complete)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for scope in &snapshot.scopes {
        scope_row.execute(params![
            run,
            scope.id.as_str(),
            scope.cloud.as_str(),
            scope.complete
        ])?;
    }
    Ok(run)
}

/// Principals of the snapshot whose immutable id differs from the one recorded under the same
/// id: deleted and re-created since lapse last saw them. Records without an id on either side
/// prove nothing.
pub(super) fn replaced_principals<'s>(
    connection: &rusqlite::Connection,
    snapshot: &'s Snapshot,
) -> rusqlite::Result<HashSet<&'s str>> {
    // One scan of the principals, not one query per principal.
    let mut statement = connection.prepare_cached(
        "SELECT id, unique_id FROM records
         WHERE kind = 'principal' AND removed_at IS NULL AND unique_id IS NOT NULL",
    )?;
    let recorded: HashMap<String, String> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(snapshot
        .principals
        .iter()
        .filter(|principal| {
            principal.unique_id.as_deref().is_some_and(|now| {
                recorded
                    .get(principal.id.as_str())
                    .is_some_and(|before| before != now)
            })
        })
        .map(|principal| principal.id.as_str())
        .collect())
}

/// A principal re-created under its old name is a new principal: the old one, and what the
/// snapshot shows it holding under the same ids, went. Those records are removed now (and the
/// flagged grants among them counted as revoked), so the sightings that follow start them
/// afresh instead of inheriting the old first sightings. A deletion is proven by the new id
/// itself, whether or not the scope was read completely.
fn retire_replaced(
    transaction: &Transaction<'_>,
    snapshot: &Snapshot,
    now: i64,
) -> rusqlite::Result<(Inventory, Vec<String>)> {
    let replaced = replaced_principals(transaction, snapshot)?;
    let mut retired = Inventory::default();
    let mut retired_grants = Vec::new();
    if replaced.is_empty() {
        return Ok((retired, retired_grants));
    }
    let mut retire = transaction.prepare_cached(
        "UPDATE records SET removed_at = ?1 WHERE kind = ?2 AND id = ?3 AND removed_at IS NULL",
    )?;
    for id in &replaced {
        retired.principals += u64::from(retire.execute(params![now, "principal", id])? > 0);
    }
    for credential in snapshot
        .credentials
        .iter()
        .filter(|credential| replaced.contains(credential.principal.as_str()))
    {
        retired.credentials +=
            u64::from(retire.execute(params![now, "credential", credential.id.as_str()])? > 0);
    }
    for grant in snapshot
        .grants
        .iter()
        .filter(|grant| replaced.contains(grant.principal.as_str()))
    {
        if retire.execute(params![now, "grant", grant.id.as_str()])? > 0 {
            retired.grants += 1;
            retired_grants.push(grant.id.as_str().to_owned());
        }
    }
    Ok((retired, retired_grants))
}

/// Everything in the snapshot was seen now; returns what was seen for the first time.
fn record_sightings(
    transaction: &Transaction<'_>,
    snapshot: &Snapshot,
    run: i64,
    now: i64,
) -> rusqlite::Result<Inventory> {
    let mut upsert = transaction.prepare_cached(UPSERT)?;
    let mut sight =
        |kind: &str, id: &str, scope: &str, unique_id: Option<&str>| -> rusqlite::Result<u64> {
            let first_run: i64 = upsert
                .query_row(params![kind, id, scope, now, run, unique_id], |row| {
                    row.get(0)
                })?;
            Ok(u64::from(first_run == run))
        };
    let mut first_seen = Inventory::default();
    for principal in &snapshot.principals {
        first_seen.principals += sight(
            "principal",
            principal.id.as_str(),
            principal.scope.as_str(),
            principal.unique_id.as_deref(),
        )?;
    }
    for credential in &snapshot.credentials {
        first_seen.credentials += sight(
            "credential",
            credential.id.as_str(),
            credential.scope.as_str(),
            None,
        )?;
    }
    for grant in &snapshot.grants {
        first_seen.grants += sight("grant", grant.id.as_str(), grant.scope.as_str(), None)?;
    }
    Ok(first_seen)
}

/// Marks removed what a complete scope no longer holds; returns the counts and the removed
/// grants. Only a complete reading of a scope proves that what it lacks is gone.
fn record_removals(
    transaction: &Transaction<'_>,
    snapshot: &Snapshot,
    run: i64,
    now: i64,
) -> rusqlite::Result<(Inventory, Vec<String>)> {
    let mut remove = transaction.prepare_cached(
        "UPDATE records SET removed_at = ?1
         WHERE scope = ?2 AND removed_at IS NULL AND last_run <> ?3
         RETURNING kind, id",
    )?;
    let mut removed = Inventory::default();
    let mut removed_grants = Vec::new();
    for scope in snapshot.scopes.iter().filter(|scope| scope.complete) {
        let mut rows = remove.query(params![now, scope.id.as_str(), run])?;
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            match kind.as_str() {
                "principal" => removed.principals += 1,
                "credential" => removed.credentials += 1,
                _ => {
                    removed.grants += 1;
                    removed_grants.push(row.get::<_, String>(1)?);
                }
            }
        }
    }
    Ok((removed, removed_grants))
}

/// Removed grants that were waiting to be revoked become revocations; returns how many.
fn record_revocations(
    transaction: &Transaction<'_>,
    removed_grants: &[String],
    run: i64,
    now: i64,
) -> rusqlite::Result<u64> {
    let mut detection = transaction.prepare_cached(
        "DELETE FROM detections WHERE grant_id = ?1 RETURNING first_detected, kind",
    )?;
    let mut revocation = transaction.prepare_cached(
        "INSERT INTO revocations (run_id, grant_id, first_detected, removed_at, kind)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut revoked = 0;
    for grant in removed_grants {
        let detected: Option<(i64, String)> = detection
            .query_row([grant], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        if let Some((first_detected, kind)) = detected {
            revocation.execute(params![run, grant, first_detected, now, kind])?;
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// Per-kind counts, standing privilege and its ages, and the detections of flagged grants.
fn write_findings(
    transaction: &Transaction<'_>,
    run: i64,
    now: i64,
    snapshot: &Snapshot,
    plan: &Plan,
) -> rusqlite::Result<()> {
    let mut by_kind: BTreeMap<FindingKind, (i64, i64)> = BTreeMap::new();
    let mut standing_ages = Vec::new();
    let mut standing = 0_i64;
    // Findings come most severe first, so the first one per grant names its worst kind.
    let mut flagged: HashMap<&str, FindingKind> = HashMap::new();
    for finding in &plan.findings {
        let counts = by_kind.entry(finding.kind).or_default();
        if !finding.is_open() {
            counts.1 += 1;
            continue;
        }
        counts.0 += 1;
        if finding.subject.subject_type != SubjectType::Grant {
            continue;
        }
        flagged
            .entry(finding.subject.id.as_str())
            .or_insert(finding.kind);
        // Standing access: privileged and held with no end, or past its just-in-time window.
        if finding.evidence.privileged
            && matches!(
                finding.kind,
                FindingKind::StandingPrivilege | FindingKind::TtlExceeded
            )
        {
            standing += 1;
            if let Some(seconds) = finding.evidence.age.and_then(|age| age.seconds) {
                standing_ages.push(seconds);
            }
        }
    }
    {
        let mut kind_row = transaction.prepare_cached(
            "INSERT INTO run_findings (run_id, kind, open, waived) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (kind, (open, waived)) in &by_kind {
            kind_row.execute(params![run, kind.as_str(), open, waived])?;
        }
    }
    let mean = if standing_ages.is_empty() {
        None
    } else {
        Some(standing_ages.iter().sum::<i64>() / count(standing_ages.len()))
    };
    transaction.execute(
        "UPDATE runs SET findings_open = ?2, findings_waived = ?3, actions = ?4, held = ?5,
                         standing_grants = ?6, standing_ages_known = ?7,
                         standing_age_mean = ?8, standing_age_max = ?9
         WHERE id = ?1",
        params![
            run,
            count(plan.summary.open),
            count(plan.summary.waived),
            count(plan.summary.actions),
            count(plan.summary.held),
            standing,
            count(standing_ages.len()),
            mean,
            standing_ages.iter().max(),
        ],
    )?;

    {
        let mut detect = transaction.prepare_cached(
            "INSERT INTO detections (grant_id, first_detected, first_run, kind)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (grant_id) DO NOTHING",
        )?;
        for (grant, kind) in &flagged {
            detect.execute(params![grant, now, run, kind.as_str()])?;
        }
    }
    // A grant seen with nothing open against it is no longer waiting to be revoked.
    let detected: Vec<String> = transaction
        .prepare("SELECT grant_id FROM detections")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let present: HashSet<&str> = snapshot
        .grants
        .iter()
        .map(|grant| grant.id.as_str())
        .collect();
    let mut forget = transaction.prepare_cached("DELETE FROM detections WHERE grant_id = ?1")?;
    for grant in detected {
        if present.contains(grant.as_str()) && !flagged.contains_key(grant.as_str()) {
            forget.execute([&grant])?;
        }
    }
    Ok(())
}
