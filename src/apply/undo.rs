//! Undo: put back what an apply changed, from its journal alone.
//!
//! Only changes lapse made (`done`, or `reconciled` after a crash) are undone, each from the
//! before-state its first intent journaled: a key reactivated, a policy re-attached, an inline
//! document put back as it was, a member re-added. A key found inactive when lapse came is not
//! lapse's to switch on. Undo journals itself like apply: an `undo-intent` before each call and
//! an `undo` after, with whether the live state shows the target restored, so an interrupted
//! undo is finished by running it again.

use std::sync::Mutex;

use lapse_sdk::{Action, ActionOutcome};

use super::journal::{Undo, UndoIntent, UndoResult};
use super::{
    ActionHistory, ActionReport, ApplyReport, Begin, Clock, Journal, JournalCommand,
    JournalContents, Mode, Operator, Providers, Record, ResultKind, Status, end_record,
    per_provider,
};
use crate::error::{Error, Result};

/// Everything one undo needs.
#[derive(Clone, Copy)]
pub struct UndoRun<'a> {
    /// The providers.
    pub providers: &'a Providers<'a>,
    /// Stamps journal lines.
    pub clock: Clock<'a>,
    /// Who runs it.
    pub operator: &'a Operator,
    /// Only this action (`--action N`).
    pub only: Option<usize>,
    /// Undos in flight at once.
    pub concurrency: usize,
}

/// The actions of a journal an undo looks at, in sequence order.
fn candidates<'c>(
    contents: &'c JournalContents,
    only: Option<usize>,
    path: &std::path::Path,
) -> Result<Vec<(usize, &'c ActionHistory, &'c Action)>> {
    let mut found = Vec::new();
    for (sequence, history) in &contents.actions {
        if only.is_some_and(|only| only != *sequence) {
            continue;
        }
        let made = history.outcome.as_ref().is_some_and(|outcome| {
            matches!(outcome.result, ResultKind::Done | ResultKind::Reconciled)
        });
        if let (true, Some(planned)) = (made, history.planned()) {
            found.push((*sequence, history, &planned.action));
        }
    }
    if found.is_empty() {
        return Err(Error::NothingToUndo {
            path: path.to_owned(),
            message: match only {
                Some(sequence) => format!(
                    "action #{sequence} made no change lapse can undo (it is not in the journal, or ended stale, gone, already done or failed)"
                ),
                None => "the journal records no change made by lapse".to_owned(),
            },
        });
    }
    Ok(found)
}

fn report(sequence: usize, action: &Action, status: Status) -> ActionReport {
    ActionReport {
        sequence,
        action: action.kind(),
        cloud: action.cloud(),
        scope: action.scope().clone(),
        principal: super::guards::principal_of(action).to_owned(),
        target: action.target_id().to_owned(),
        status,
        verified: None,
        message: None,
        calls: Vec::new(),
        earlier: false,
    }
}

/// An undo the journal already settled, or one that cannot be made.
fn settled(sequence: usize, history: &ActionHistory, action: &Action) -> Option<ActionReport> {
    if !action.kind().is_reversible()
        || history.planned().is_some_and(|planned| !planned.reversible)
    {
        let mut done = report(sequence, action, Status::Failed);
        done.message = Some(format!("a {} cannot be undone", action.kind().as_str()));
        return Some(done);
    }
    let undo = history.undo.as_ref()?;
    if undo.result == UndoResult::Failed || !undo.verified {
        return None;
    }
    let mut done = report(
        sequence,
        action,
        match undo.result {
            UndoResult::Done => Status::Done,
            _ => Status::AlreadyDone,
        },
    );
    done.verified = Some(true);
    done.earlier = true;
    Some(done)
}

fn is_restored(live: &lapse_sdk::TargetState) -> bool {
    live.present && !live.revoked
}

/// Shows what an undo would call, changing nothing.
///
/// # Errors
/// [`Error::NothingToUndo`] when the journal holds no change lapse made (or not `--action`).
pub async fn undo_dry_run(
    contents: &JournalContents,
    path: &std::path::Path,
    run: &UndoRun<'_>,
) -> Result<ApplyReport> {
    let candidates = candidates(contents, run.only, path)?;
    let mut actions = per_provider(
        candidates,
        |(_, _, action)| action.cloud(),
        run.concurrency,
        |(sequence, history, action)| async move {
            if let Some(done) = settled(sequence, history, action) {
                return done;
            }
            let (Some(provider), Some(before)) =
                (run.providers.get(action.cloud()), history.before())
            else {
                let mut failed = report(sequence, action, Status::Failed);
                failed.message = Some("no provider for this cloud, or no before-state".to_owned());
                return failed;
            };
            match provider.read_target(action).await {
                Ok(live) if is_restored(&live) => {
                    let mut done = report(sequence, action, Status::AlreadyDone);
                    done.verified = Some(true);
                    done
                }
                Ok(_) => {
                    let mut would = report(sequence, action, Status::WouldChange);
                    would.calls = provider.describe_undo(action, before);
                    would
                }
                Err(error) => {
                    let mut failed = report(sequence, action, Status::Failed);
                    failed.message = Some(error.to_string());
                    failed
                }
            }
        },
    )
    .await;
    actions.sort_by_key(|action| action.sequence);
    Ok(ApplyReport {
        format: super::APPLY_FORMAT,
        version: super::APPLY_VERSION,
        command: JournalCommand::Undo,
        mode: Mode::DryRun,
        plan_digest: contents.plan_digest().unwrap_or_default().to_owned(),
        journal: Some(path.display().to_string()),
        stopped_after: None,
        actions,
    })
}

/// Restores every reversible change lapse made (or `--action N`), journaling each step.
///
/// # Errors
/// [`Error::NothingToUndo`] when there is nothing to undo; a journal write failure.
pub async fn undo_execute(journal: &mut Journal, run: &UndoRun<'_>) -> Result<ApplyReport> {
    let contents = journal.contents().clone();
    let path = journal.path().to_owned();
    let candidates = candidates(&contents, run.only, &path)?;
    let Some(first) = contents.runs.first().map(|run| &run.begin) else {
        return Err(Error::NothingToUndo {
            path,
            message: "the journal has no run".to_owned(),
        });
    };
    journal.append(Record::Begin(Begin {
        at: (run.clock)(),
        command: JournalCommand::Undo,
        operator: run.operator.clone(),
        lapse_version: env!("CARGO_PKG_VERSION").to_owned(),
        stop_after: None,
        ..first.clone()
    }))?;
    let writer = Mutex::new(&mut *journal);
    let write_error: Mutex<Option<Error>> = Mutex::new(None);
    let write = |record: Record| -> bool {
        let result = match writer.lock() {
            Ok(mut journal) => journal.append(record),
            Err(_) => return false,
        };
        match result {
            Ok(()) => true,
            Err(error) => {
                if let Ok(mut slot) = write_error.lock()
                    && slot.is_none()
                {
                    *slot = Some(error);
                }
                false
            }
        }
    };
    let write = &write;
    let mut actions = per_provider(
        candidates,
        |(_, _, action)| action.cloud(),
        run.concurrency,
        |(sequence, history, action)| async move {
            if let Some(done) = settled(sequence, history, action) {
                return done;
            }
            let (Some(provider), Some(before)) =
                (run.providers.get(action.cloud()), history.before())
            else {
                let mut failed = report(sequence, action, Status::Failed);
                failed.message = Some("no provider for this cloud, or no before-state".to_owned());
                return failed;
            };
            let now = || (run.clock)();
            let live = match provider.read_target(action).await {
                Ok(live) => live,
                Err(error) => {
                    let mut failed = report(sequence, action, Status::Failed);
                    failed.message = Some(format!("cannot read the target: {error}"));
                    return failed;
                }
            };
            if is_restored(&live) {
                let mut done = report(sequence, action, Status::AlreadyDone);
                done.verified = Some(true);
                write(Record::Undo(Undo {
                    sequence,
                    at: now(),
                    result: UndoResult::AlreadyDone,
                    verified: true,
                    after: Some(live),
                    message: None,
                }));
                return done;
            }
            let calls = provider.describe_undo(action, before);
            if !write(Record::UndoIntent(UndoIntent {
                sequence,
                at: now(),
                live,
                calls: calls.clone(),
            })) {
                let mut failed = report(sequence, action, Status::Failed);
                failed.message =
                    Some("the journal could not be written; no call was made".to_owned());
                return failed;
            }
            let (result, mut message) = match provider.undo(action, before).await {
                Ok(ActionOutcome::Done) => (UndoResult::Done, None),
                Ok(ActionOutcome::AlreadyDone) => (UndoResult::AlreadyDone, None),
                Err(error) => (UndoResult::Failed, Some(error.to_string())),
            };
            let (verified, after) = if result == UndoResult::Failed {
                (false, None)
            } else {
                match provider.read_target(action).await {
                    Ok(after) => (is_restored(&after), Some(after)),
                    Err(error) => {
                        message = Some(format!("cannot verify: {error}"));
                        (false, None)
                    }
                }
            };
            if result != UndoResult::Failed && !verified && message.is_none() {
                message = Some("the live state does not show the target restored".to_owned());
            }
            write(Record::Undo(Undo {
                sequence,
                at: now(),
                result,
                verified,
                after,
                message: message.clone(),
            }));
            let mut done = report(
                sequence,
                action,
                match result {
                    UndoResult::Done => Status::Done,
                    UndoResult::AlreadyDone => Status::AlreadyDone,
                    UndoResult::Failed => Status::Failed,
                },
            );
            done.calls = calls;
            done.verified = Some(verified);
            done.message = message;
            done
        },
    )
    .await;
    if let Some(error) = write_error.into_inner().ok().flatten() {
        return Err(error);
    }
    actions.sort_by_key(|action| action.sequence);
    let report = ApplyReport {
        format: super::APPLY_FORMAT,
        version: super::APPLY_VERSION,
        command: JournalCommand::Undo,
        mode: Mode::Execute,
        plan_digest: contents.plan_digest().unwrap_or_default().to_owned(),
        journal: Some(path.display().to_string()),
        stopped_after: None,
        actions,
    };
    journal.append(Record::End(end_record(
        (run.clock)(),
        JournalCommand::Undo,
        &report,
    )))?;
    Ok(report)
}
