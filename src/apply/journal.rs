//! The journal: one JSON line per step of an apply or undo, appended and flushed to disk
//! (`fsync`) before the next step, so that a crash at any point leaves a record that a re-run
//! finishes from and that `lapse report --journal` turns into evidence.
//!
//! Every line carries `"format": "lapse-journal"`, `"version": 1` and a `kind`:
//!
//! | kind | written | holds |
//! |---|---|---|
//! | `begin` | when a run starts | plan and policy digests, who, where, the caps in force |
//! | `intent` | before each call | the planned action and findings, the live before-state, the calls |
//! | `outcome` | after the call (or instead of one: stale, gone, already done) | the result |
//! | `verify` | after re-reading the target | whether the live state shows the change |
//! | `undo-intent` | before an undo call | the live state before restoring, the calls |
//! | `undo` | after it | the result, and whether the restore shows live |
//! | `end` | when a run finishes | the counts |
//!
//! A line torn by a crash (no final newline) is dropped when the journal is next opened for
//! writing: it was never complete, so nothing depended on it. Any other unreadable line is an
//! error: a journal is evidence and is never rewritten.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use lapse_sdk::{Action, TargetState, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::finding::{FindingKind, Severity};
use crate::plan::Provenance;
use crate::policy::Origin;

/// The value of every line's `format`.
pub const JOURNAL_FORMAT: &str = "lapse-journal";
/// The journal format version this build reads and writes.
pub const JOURNAL_VERSION: u32 = 1;

/// Which command wrote a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JournalCommand {
    /// `lapse apply --execute`.
    #[default]
    Apply,
    /// `lapse undo --execute`.
    Undo,
}

/// Who ran lapse, and on which machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The operating-system user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The first line of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begin {
    /// When the run started.
    pub at: Timestamp,
    /// Apply or undo.
    pub command: JournalCommand,
    /// SHA-256 of the plan file (or of the fresh plan's JSON).
    pub plan_digest: String,
    /// The plan file, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_file: Option<String>,
    /// The instant the plan was evaluated at.
    pub plan_now: Timestamp,
    /// Who made the plan, when and where, as the plan says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_made: Option<Provenance>,
    /// Digest of the policy the plan was made with.
    pub plan_policy_digest: String,
    /// Digest of the policy the guards checked this run against.
    pub policy_digest: String,
    /// Digest of the snapshot the plan came from.
    pub snapshot_digest: String,
    /// Who ran it.
    pub operator: Operator,
    /// The lapse version.
    pub lapse_version: String,
    /// Actions in the plan.
    pub actions: usize,
    /// The `--max-revocations` cap in force.
    pub max_revocations: usize,
    /// `--stop-after`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after: Option<usize>,
}

/// What a journal records about a finding behind an action, so that the journal stands alone
/// as evidence without the plan or the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingEvidence {
    /// The finding's stable id.
    pub id: String,
    /// Its kind.
    pub kind: FindingKind,
    /// Its severity.
    pub severity: Severity,
    /// The sentence a person reads.
    pub summary: String,
    /// What decided it (`rule-id`, `declared rules[0]`, `defaults.credential_max_idle`, `lapse`).
    pub decided_by: String,
    /// Where the deciding policy entry is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The subject's owner, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Who approved the declaration behind it, where the policy says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The ticket of that declaration, where the policy says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// What the plan says about an action, copied into the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    /// Digest of the target record as planned.
    pub target_digest: String,
    /// Whether it can be undone.
    pub reversible: bool,
    /// The findings behind it.
    pub findings: Vec<FindingEvidence>,
    /// The action with its planned record.
    pub action: Action,
}

/// Written before a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The action's sequence number in the plan.
    pub sequence: usize,
    /// When.
    pub at: Timestamp,
    /// 1 for the first call; more after a crash before the change reached the cloud.
    pub attempt: u32,
    /// The planned action.
    pub planned: Planned,
    /// The target as read live just before the call.
    pub before: TargetState,
    /// The calls about to be made.
    pub calls: Vec<String>,
}

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultKind {
    /// lapse made the change.
    Done,
    /// The live target already showed the change; no call was made.
    AlreadyDone,
    /// The target no longer exists; no call was made.
    Gone,
    /// A run was interrupted after its intent; the re-run found the change made.
    Reconciled,
    /// The target changed since the plan; skipped.
    Stale,
    /// The call or a read failed.
    Failed,
}

impl ResultKind {
    /// The kebab-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ResultKind::Done => "done",
            ResultKind::AlreadyDone => "already-done",
            ResultKind::Gone => "gone",
            ResultKind::Reconciled => "reconciled",
            ResultKind::Stale => "stale",
            ResultKind::Failed => "failed",
        }
    }

    /// True when the action is settled: a re-run does not act on it again. A failure is not.
    #[must_use]
    pub fn is_final(self) -> bool {
        !matches!(self, ResultKind::Failed)
    }

    /// True when the live state should show the change (and is verified).
    #[must_use]
    pub fn expects_revoked(self) -> bool {
        matches!(
            self,
            ResultKind::Done | ResultKind::AlreadyDone | ResultKind::Gone | ResultKind::Reconciled
        )
    }
}

/// Written after a call, or instead of one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The action's sequence number.
    pub sequence: usize,
    /// When.
    pub at: Timestamp,
    /// How it ended.
    pub result: ResultKind,
    /// Why, for stale and failed actions; the error as the provider gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The planned action, when no intent precedes this outcome (no call was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<Planned>,
    /// The live target that decided it, when no intent precedes this outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<TargetState>,
}

/// Written after re-reading a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    /// The action's sequence number.
    pub sequence: usize,
    /// When.
    pub at: Timestamp,
    /// True only when the live state shows the change.
    pub verified: bool,
    /// The target as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<TargetState>,
    /// Why it could not be verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Written before an undo call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoIntent {
    /// The action's sequence number.
    pub sequence: usize,
    /// When.
    pub at: Timestamp,
    /// The target as read live before restoring.
    pub live: TargetState,
    /// The calls about to be made.
    pub calls: Vec<String>,
}

/// How an undo ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UndoResult {
    /// lapse restored the target.
    Done,
    /// The live target was already as it was before the action; no call was made.
    AlreadyDone,
    /// The call or a read failed.
    Failed,
}

impl UndoResult {
    /// The kebab-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            UndoResult::Done => "done",
            UndoResult::AlreadyDone => "already-done",
            UndoResult::Failed => "failed",
        }
    }
}

/// Written after an undo call, or instead of one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    /// The action's sequence number.
    pub sequence: usize,
    /// When.
    pub at: Timestamp,
    /// How it ended.
    pub result: UndoResult,
    /// True only when the live state shows the target restored.
    pub verified: bool,
    /// The target as read afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<TargetState>,
    /// Why, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Counts written when a run finishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// When.
    pub at: Timestamp,
    /// Apply or undo.
    pub command: JournalCommand,
    /// Results of this run's actions by kind (`done`, `stale`, …, `not-started`).
    pub results: BTreeMap<String, usize>,
    /// Actions whose change the live state does not show.
    pub unverified: usize,
}

/// One journal line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Record {
    /// A run starts.
    Begin(Begin),
    /// A call is about to be made.
    Intent(Intent),
    /// An action ended.
    Outcome(Outcome),
    /// A target was re-read.
    Verify(Verify),
    /// An undo call is about to be made.
    UndoIntent(UndoIntent),
    /// An undo ended.
    Undo(Undo),
    /// A run finished.
    End(End),
}

#[derive(Serialize)]
struct LineOut<'a> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    record: &'a Record,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    format: String,
    #[serde(default)]
    version: u32,
}

#[derive(Deserialize)]
struct LineIn {
    #[serde(flatten)]
    record: Record,
}

/// Everything a journal holds about one action, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionHistory {
    /// Every intent (one per call attempt).
    pub intents: Vec<Intent>,
    /// The latest outcome.
    pub outcome: Option<Outcome>,
    /// The latest verification.
    pub verify: Option<Verify>,
    /// The latest undo intent.
    pub undo_intent: Option<UndoIntent>,
    /// The latest undo outcome.
    pub undo: Option<Undo>,
    /// The attempt the latest outcome settled (0: none).
    settled_attempt: u32,
}

impl ActionHistory {
    /// The planned action, from the first intent or the outcome that stood in for one.
    #[must_use]
    pub fn planned(&self) -> Option<&Planned> {
        self.intents
            .first()
            .map(|intent| &intent.planned)
            .or_else(|| {
                self.outcome
                    .as_ref()
                    .and_then(|outcome| outcome.planned.as_ref())
            })
    }

    /// The target before lapse changed it: the first intent's reading.
    #[must_use]
    pub fn before(&self) -> Option<&TargetState> {
        self.intents
            .first()
            .map(|intent| &intent.before)
            .or_else(|| {
                self.outcome
                    .as_ref()
                    .and_then(|outcome| outcome.before.as_ref())
            })
    }

    /// True when an intent was written and no outcome after it: a run stopped between the
    /// two, and the live state must say whether the call reached the cloud.
    #[must_use]
    pub fn interrupted(&self) -> bool {
        self.intents
            .last()
            .is_some_and(|intent| intent.attempt > self.settled_attempt)
    }

    /// True when lapse's latest call on the target ended failed, after an intent whose
    /// before-state showed the change not made: the call may have landed though its answer
    /// said otherwise (a response lost, a retry that then failed), so a later reading that
    /// shows the change shows lapse's own.
    #[must_use]
    pub fn call_failed_on_an_unchanged_target(&self) -> bool {
        let Some(intent) = self.intents.last() else {
            return false;
        };
        self.outcome
            .as_ref()
            .is_some_and(|outcome| outcome.result == ResultKind::Failed)
            && intent.attempt == self.settled_attempt
            && intent.before.present
            && !intent.before.revoked
    }

    /// The number the next attempt's intent carries.
    #[must_use]
    pub fn next_attempt(&self) -> u32 {
        self.intents.last().map_or(1, |intent| intent.attempt + 1)
    }
}

/// One run in a journal: its `begin`, and its `end` unless it was interrupted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// How it started.
    pub begin: Begin,
    /// How it finished.
    pub end: Option<End>,
}

/// A journal as read: its runs and each action's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalContents {
    /// The runs, oldest first.
    pub runs: Vec<Run>,
    /// Per action sequence number.
    pub actions: BTreeMap<usize, ActionHistory>,
}

impl JournalContents {
    /// The plan digest the journal belongs to (from its first `begin`).
    #[must_use]
    pub fn plan_digest(&self) -> Option<&str> {
        self.runs.first().map(|run| run.begin.plan_digest.as_str())
    }

    fn absorb(&mut self, record: Record) {
        match record {
            Record::Begin(begin) => self.runs.push(Run { begin, end: None }),
            // Runs hold the journal's lock one at a time: an `end` closes the latest `begin`.
            Record::End(end) => {
                if let Some(run) = self.runs.last_mut() {
                    run.end = Some(end);
                }
            }
            Record::Intent(intent) => {
                let history = self.actions.entry(intent.sequence).or_default();
                history.intents.push(intent);
            }
            Record::Outcome(outcome) => {
                let history = self.actions.entry(outcome.sequence).or_default();
                history.settled_attempt = history.intents.last().map_or(0, |intent| intent.attempt);
                history.verify = None;
                history.outcome = Some(outcome);
            }
            Record::Verify(verify) => {
                let sequence = verify.sequence;
                self.actions.entry(sequence).or_default().verify = Some(verify);
            }
            Record::UndoIntent(intent) => {
                let history = self.actions.entry(intent.sequence).or_default();
                history.undo = None;
                history.undo_intent = Some(intent);
            }
            Record::Undo(undo) => {
                let sequence = undo.sequence;
                self.actions.entry(sequence).or_default().undo = Some(undo);
            }
        }
    }
}

/// Parses journal text. `tolerate_torn_tail` drops a last line without a newline that does not
/// parse (a write cut short by a crash).
fn parse(text: &str, path: &Path, tolerate_torn_tail: bool) -> Result<JournalContents> {
    let mut contents = JournalContents::default();
    let ends_with_newline = text.ends_with('\n');
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let last = index + 1 == lines.len();
        let bad = |message: String| Error::Journal {
            path: path.to_owned(),
            line: index + 1,
            message,
        };
        let header: Header = match serde_json::from_str(line) {
            Ok(header) => header,
            Err(_) if last && !ends_with_newline && tolerate_torn_tail => break,
            Err(error) => return Err(bad(format!("not a journal line: {error}"))),
        };
        if header.format != JOURNAL_FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {JOURNAL_FORMAT:?}: not a lapse journal",
                header.format
            )));
        }
        if header.version != JOURNAL_VERSION {
            return Err(bad(format!(
                "journal version {} (this lapse reads version {JOURNAL_VERSION}): use the lapse that wrote it",
                header.version
            )));
        }
        let parsed: LineIn = serde_json::from_str(line).map_err(|error| bad(error.to_string()))?;
        contents.absorb(parsed.record);
    }
    Ok(contents)
}

/// Reads a journal without taking its lock (for reports). A torn last line is ignored.
///
/// # Errors
/// [`Error::JournalIo`] when it cannot be read, [`Error::Journal`] for a line this build
/// cannot read.
pub fn read(path: &Path) -> Result<JournalContents> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::JournalIo {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, true)
}

/// The lock file of a journal: its name with `.lock` appended.
#[must_use]
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    journal.with_file_name(name)
}

/// A journal open for appending, locked for this process until dropped. The file itself is
/// created by the first line written, so a run refused before its first step leaves none.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    contents: JournalContents,
    // Held for its lock; closing it releases the lock.
    _lock: File,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, its folder included, and takes its lock
    /// without waiting: another apply or undo on the same journal is refused, not queued.
    ///
    /// # Errors
    /// [`Error::JournalLocked`] when another run holds it, [`Error::JournalIo`] for the file
    /// system, [`Error::Journal`] for a damaged line.
    pub fn open(path: &Path) -> Result<Journal> {
        let io = |source| Error::JournalIo {
            path: path.to_owned(),
            source,
        };
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(io)?;
        }
        let lock_file = lock_path(path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_file)
            .map_err(|source| Error::JournalIo {
                path: lock_file.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::JournalLocked {
                    path: path.to_owned(),
                    lock: lock_file,
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(Error::JournalIo {
                    path: lock_file,
                    source,
                });
            }
        }
        let file = if path.exists() {
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(path)
                .map_err(io)?;
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(io)?;
            let contents = parse(&text, path, true)?;
            // Cut a torn last line so the next line starts on a line of its own.
            if !text.is_empty() && !text.ends_with('\n') {
                let keep = text.rfind('\n').map_or(0, |index| index + 1);
                file.set_len(keep as u64).map_err(io)?;
                file.seek(SeekFrom::End(0)).map_err(io)?;
                file.sync_data().map_err(io)?;
            }
            Some((file, contents))
        } else {
            None
        };
        let (file, contents) = match file {
            Some((file, contents)) => (Some(file), contents),
            None => (None, JournalContents::default()),
        };
        Ok(Journal {
            path: path.to_owned(),
            file,
            contents,
            _lock: lock,
        })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the journal holds, this run's lines included.
    #[must_use]
    pub fn contents(&self) -> &JournalContents {
        &self.contents
    }

    /// Appends one line and flushes it to disk before returning.
    ///
    /// # Errors
    /// [`Error::JournalIo`] when the write or the flush fails: the caller must not make the
    /// call the line announces.
    pub fn append(&mut self, record: Record) -> Result<()> {
        let mut line = serde_json::to_string(&LineOut {
            format: JOURNAL_FORMAT,
            version: JOURNAL_VERSION,
            record: &record,
        })
        .map_err(|error| Error::JournalIo {
            path: self.path.clone(),
            source: std::io::Error::other(error),
        })?;
        line.push('\n');
        let io = |source| Error::JournalIo {
            path: self.path.clone(),
            source,
        };
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(io)?;
                sync_folder(&self.path);
                self.file.insert(file)
            }
        };
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        self.contents.absorb(record);
        Ok(())
    }
}

/// Flushes a new file's directory entry, so the file itself survives a power cut. Best effort:
/// not every platform can open a folder for this.
fn sync_folder(path: &Path) {
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        && let Ok(handle) = File::open(folder)
    {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests;
