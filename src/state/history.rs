//! `lapse history`: one summary per recorded run, as a table or as versioned JSON.
//!
//! Definitions, per run:
//! - **standing privileged grants**: open (not waived) findings on privileged grants of kind
//!   `standing-privilege` (no declaration, no end) or `ttl-exceeded` (held past its just-in-time
//!   window: standing access in all but name);
//! - **age of standing access**: mean and maximum age of those findings whose age is known (from
//!   the cloud or from first sight); unknown ages are counted apart, never guessed;
//! - **open waivers**: findings waived by an exception in force;
//! - **revoked**: grants that a complete scan of this run no longer found and that had an open
//!   finding in an earlier run; **time to revoke** runs from the first run that flagged the grant
//!   to this run.
//!
//! The renderers live beside the data rather than in `report/`: that module renders plans, and
//! a history is not one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use comfy_table::{ColumnConstraint, ContentArrangement, Table, Width, presets};
use lapse_sdk::Timestamp;
use rusqlite::params;
use serde::Serialize;

use super::StateStore;
use crate::diff::human_duration;
use crate::error::Result;
use crate::finding::FindingKind;

/// The value of the `format` field of `history --format json`.
pub const HISTORY_FORMAT: &str = "lapse-history";
/// The history format version.
pub const HISTORY_VERSION: u32 = 1;

/// Counts per record type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// Principals.
    pub principals: u64,
    /// Credentials.
    pub credentials: u64,
    /// Grants.
    pub grants: u64,
}

/// The findings of a run that planned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunFindings {
    /// Findings not waived.
    pub open: u64,
    /// Findings waived by an exception in force (the open waivers).
    pub waived: u64,
    /// Actions planned.
    pub actions: u64,
    /// Open findings whose action was held back.
    pub held: u64,
    /// Open findings by kind.
    pub by_kind: BTreeMap<String, u64>,
}

/// Standing privileged access in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StandingSummary {
    /// Open findings on privileged grants of kind `standing-privilege` or `ttl-exceeded`.
    pub grants: u64,
    /// How many of them have a known age.
    pub ages_known: u64,
    /// Mean age of those, in seconds.
    pub mean_age_seconds: Option<i64>,
    /// Greatest age of those, in seconds.
    pub max_age_seconds: Option<i64>,
}

/// Flagged grants that were gone in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RevocationSummary {
    /// How many.
    pub grants: u64,
    /// Mean time from first detection to removal, in seconds.
    pub mean_seconds_to_revoke: Option<i64>,
    /// Longest time from first detection to removal, in seconds.
    pub max_seconds_to_revoke: Option<i64>,
}

/// One recorded run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Its number in the state file.
    pub run: i64,
    /// The command that recorded it (`plan`, `snapshot`).
    pub command: String,
    /// The run's instant.
    pub at: Timestamp,
    /// When its snapshot was taken.
    pub snapshot_taken_at: Timestamp,
    /// False when a scope could not be read completely.
    pub complete: bool,
    /// Scopes read.
    pub scopes: u64,
    /// Scopes read incompletely.
    pub incomplete_scopes: u64,
    /// What the snapshot held.
    pub inventory: Inventory,
    /// What was seen for the first time (or again after a removal).
    pub first_seen: Inventory,
    /// What a complete scan no longer found.
    pub removed: Inventory,
    /// Findings; absent for runs that did not plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<RunFindings>,
    /// Standing privileged access; absent for runs that did not plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standing_privilege: Option<StandingSummary>,
    /// Flagged grants gone in this run.
    pub revoked: RevocationSummary,
}

/// The runs of a state file, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct History {
    /// Always [`HISTORY_FORMAT`].
    pub format: String,
    /// [`HISTORY_VERSION`].
    pub version: u32,
    /// Runs before this instant are left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// The runs.
    pub runs: Vec<RunSummary>,
}

impl StateStore {
    /// The recorded runs at or after `since`, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::State`] when the file cannot be read.
    pub fn history(&self, since: Option<Timestamp>) -> Result<History> {
        self.read_history(since)
            .map_err(|source| self.error("read the history", source))
    }

    fn read_history(&self, since: Option<Timestamp>) -> rusqlite::Result<History> {
        let mut runs_query = self.connection.prepare(
            "SELECT id, command, at, snapshot_taken_at, complete, scopes, incomplete_scopes,
                    principals, credentials, grants,
                    new_principals, new_credentials, new_grants,
                    removed_principals, removed_credentials, removed_grants,
                    findings_open, findings_waived, actions, held,
                    standing_grants, standing_ages_known, standing_age_mean, standing_age_max
             FROM runs WHERE at >= ?1 ORDER BY at, id",
        )?;
        let mut kinds_query = self.connection.prepare(
            "SELECT kind, open FROM run_findings WHERE run_id = ?1 AND open > 0 ORDER BY kind",
        )?;
        let mut revoked_query = self.connection.prepare(
            "SELECT count(*), avg(removed_at - first_detected), max(removed_at - first_detected)
             FROM revocations WHERE run_id = ?1",
        )?;
        let since_seconds = since.map_or(i64::MIN, Timestamp::unix_seconds);
        let mut rows = runs_query.query(params![since_seconds])?;
        let mut runs = Vec::new();
        while let Some(row) = rows.next()? {
            let run: i64 = row.get(0)?;
            let instant = |index: usize| -> rusqlite::Result<Timestamp> {
                let seconds: i64 = row.get(index)?;
                Ok(Timestamp::from_unix_seconds(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
            };
            let number =
                |index: usize| -> rusqlite::Result<u64> { row.get::<_, i64>(index).map(unsigned) };
            let inventory = |first: usize| -> rusqlite::Result<Inventory> {
                Ok(Inventory {
                    principals: number(first)?,
                    credentials: number(first + 1)?,
                    grants: number(first + 2)?,
                })
            };
            let findings = match row.get::<_, Option<i64>>(16)? {
                None => None,
                Some(open) => {
                    let by_kind = kinds_query
                        .query_map([run], |kind_row| {
                            Ok((kind_row.get::<_, String>(0)?, unsigned(kind_row.get(1)?)))
                        })?
                        .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
                    Some(RunFindings {
                        open: unsigned(open),
                        waived: number(17)?,
                        actions: number(18)?,
                        held: number(19)?,
                        by_kind,
                    })
                }
            };
            let standing_privilege = match row.get::<_, Option<i64>>(20)? {
                None => None,
                Some(grants) => Some(StandingSummary {
                    grants: unsigned(grants),
                    ages_known: number(21)?,
                    mean_age_seconds: row.get(22)?,
                    max_age_seconds: row.get(23)?,
                }),
            };
            let revoked = revoked_query.query_row([run], |revoked_row| {
                let mean: Option<f64> = revoked_row.get(1)?;
                Ok(RevocationSummary {
                    grants: unsigned(revoked_row.get(0)?),
                    // Whole seconds: the inputs are whole seconds, and so is every age shown.
                    #[allow(clippy::cast_possible_truncation)]
                    mean_seconds_to_revoke: mean.map(|mean| mean.round() as i64),
                    max_seconds_to_revoke: revoked_row.get(2)?,
                })
            })?;
            runs.push(RunSummary {
                run,
                command: row.get(1)?,
                at: instant(2)?,
                snapshot_taken_at: instant(3)?,
                complete: row.get(4)?,
                scopes: number(5)?,
                incomplete_scopes: number(6)?,
                inventory: inventory(7)?,
                first_seen: inventory(10)?,
                removed: inventory(13)?,
                findings,
                standing_privilege,
                revoked,
            });
        }
        Ok(History {
            format: HISTORY_FORMAT.to_owned(),
            version: HISTORY_VERSION,
            since,
            runs,
        })
    }
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl History {
    /// Pretty JSON with a trailing newline.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Plain data always serializes; an empty object is the safe fallback.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned());
        text.push('\n');
        text
    }

    /// A table for people, fitted to `width` columns.
    #[must_use]
    pub fn to_table(&self, width: u16) -> String {
        let mut out = String::new();
        let since = self
            .since
            .map(|since| format!(" since {since}"))
            .unwrap_or_default();
        let (Some(first), Some(last)) = (self.runs.first(), self.runs.last()) else {
            let _ = writeln!(out, "No runs recorded{since}.");
            return out;
        };
        let _ = writeln!(
            out,
            "lapse history: {} run(s){since}, {} to {}\n",
            self.runs.len(),
            first.at,
            last.at
        );
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_HORIZONTAL_ONLY)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width)
            .force_no_tty()
            .set_header([
                "RUN",
                "TIME (UTC)",
                "STANDING",
                "AGE",
                "OPEN",
                "WAIVED",
                "REVOKED",
                "OPEN BY KIND",
            ]);
        // Eight columns in 100: one space between cells instead of two, and times, ages and
        // kind names kept whole (a boundary counts the padding).
        for (index, column) in table.column_iter_mut().enumerate() {
            column.set_padding((0, 1));
            let least = match index {
                1 => 17,
                2 => 9,
                3 => 10,
                4 => 5,
                5 => 7,
                6 => 12,
                7 => 25,
                _ => continue,
            };
            column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(least)));
        }
        for run in &self.runs {
            table.add_row(vec![
                run.run.to_string(),
                time_text(run),
                run.standing_privilege
                    .map_or_else(|| "-".to_owned(), |standing| standing.grants.to_string()),
                standing_age_text(run.standing_privilege),
                run.findings
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |findings| findings.open.to_string()),
                run.findings
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |findings| findings.waived.to_string()),
                revoked_text(run.revoked),
                by_kind_text(run),
            ]);
        }
        out.push_str(&table.to_string());
        out.push_str(
            "\n\nSTANDING: privileged grants held with no end or past their window; AGE: their mean / max\n\
             age where known. REVOKED: flagged grants a complete scan no longer found, and the time\n\
             since first flagged. incomplete n/m: scopes not fully read; nothing absent from them is\n\
             taken as removed.\n",
        );
        out
    }
}

/// The run's time to the minute, and a second line when a scope was read incompletely.
fn time_text(run: &RunSummary) -> String {
    let at = run.at.as_offset();
    let mut text = format!("{} {:02}:{:02}", at.date(), at.hour(), at.minute());
    if run.incomplete_scopes > 0 {
        let _ = write!(
            text,
            "\nincomplete {}/{}",
            run.incomplete_scopes, run.scopes
        );
    }
    text
}

fn standing_age_text(standing: Option<StandingSummary>) -> String {
    match standing {
        None => "-".to_owned(),
        Some(standing) => match (standing.mean_age_seconds, standing.max_age_seconds) {
            (Some(mean), Some(max)) => {
                let unknown = standing.grants.saturating_sub(standing.ages_known);
                let unknown = if unknown > 0 {
                    format!(" ({unknown} unknown)")
                } else {
                    String::new()
                };
                format!(
                    "{} / {}{unknown}",
                    human_duration(mean),
                    human_duration(max)
                )
            }
            _ if standing.grants > 0 => "unknown".to_owned(),
            _ => "-".to_owned(),
        },
    }
}

fn revoked_text(revoked: RevocationSummary) -> String {
    match (
        revoked.grants,
        revoked.mean_seconds_to_revoke,
        revoked.max_seconds_to_revoke,
    ) {
        (0, _, _) => "-".to_owned(),
        (1, _, Some(max)) => format!("1 after {}", human_duration(max)),
        (grants, Some(mean), Some(max)) => format!(
            "{grants} after {} mean, {} max",
            human_duration(mean),
            human_duration(max)
        ),
        (grants, _, _) => grants.to_string(),
    }
}

fn by_kind_text(run: &RunSummary) -> String {
    let Some(findings) = &run.findings else {
        return format!("({} only)", run.command);
    };
    if findings.by_kind.is_empty() {
        return "none".to_owned();
    }
    // Report order (most serious first), then anything this build does not know.
    let mut lines: Vec<String> = FindingKind::ALL
        .iter()
        .filter_map(|kind| {
            findings
                .by_kind
                .get(kind.as_str())
                .map(|count| format!("{kind} {count}"))
        })
        .collect();
    lines.extend(
        findings
            .by_kind
            .iter()
            .filter(|(kind, _)| !FindingKind::ALL.iter().any(|known| known.as_str() == *kind))
            .map(|(kind, count)| format!("{kind} {count}")),
    );
    lines.join("\n")
}
