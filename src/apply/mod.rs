//! Apply: carry out a reviewed plan exactly, and prove it.
//!
//! The operator's promise: nothing is revoked that was not reviewed, nothing revoked is lost,
//! and every revocation can be proven. In code:
//!
//! 1. [`read_live`] reads the scopes the plan changes; [`check`] runs every guard
//!    ([`guards`]) against the plan, the policy as it is now, and that live reading. A refusal
//!    changes nothing.
//! 2. [`dry_run`] reads each target and says which call it would make; nothing is written.
//! 3. [`execute`] takes each action in plan order (a bounded number at a time): it re-reads the
//!    target, skips it as stale when it changed since the plan ([`stale`]), journals the intent
//!    with the before-state, calls the provider, journals the outcome, re-reads the target and
//!    journals whether the change shows ([`journal`]). A re-run with the same plan and journal
//!    skips what is settled and reconciles what a crash left between intent and outcome.
//! 4. [`undo`] restores what was reversible, from the journal alone.
//!
//! Providers are looked up by the action's cloud; the engine never sees an SDK type, and never
//! decides policy: protection is the diff's own test, run against the current policy.

pub mod evidence;
pub mod guards;
pub mod journal;
pub mod stale;
mod undo;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::StreamExt;
use lapse_sdk::{
    Action, ActionKind, ActionOutcome, Cloud, Provider, ScopeId, Snapshot, SnapshotRequest,
    TargetState, Timestamp,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::finding::Decider;
use crate::plan::{Plan, PlannedChange};
use crate::policy::Policy;

pub use guards::{Guard, GuardSettings, Refusal, Refusals};
pub use journal::{
    ActionHistory, Begin, End, FindingEvidence, Intent, Journal, JournalCommand, JournalContents,
    Operator, Outcome, Planned, Record, ResultKind, Run, Verify,
};
pub use undo::{UndoRun, undo_dry_run, undo_execute};

/// The value of `format` in `apply --format json`.
pub const APPLY_FORMAT: &str = "lapse-apply";
/// Its version.
pub const APPLY_VERSION: u32 = 1;

/// The providers of a run, one per cloud.
#[derive(Clone, Default)]
pub struct Providers<'a> {
    by_cloud: BTreeMap<Cloud, &'a dyn Provider>,
}

impl<'a> Providers<'a> {
    /// No provider yet.
    #[must_use]
    pub fn new() -> Self {
        Providers::default()
    }

    /// Adds a provider for its cloud (replacing another for the same cloud).
    #[must_use]
    pub fn with(mut self, provider: &'a dyn Provider) -> Self {
        self.by_cloud.insert(provider.cloud(), provider);
        self
    }

    /// The provider for a cloud.
    #[must_use]
    pub fn get(&self, cloud: Cloud) -> Option<&'a dyn Provider> {
        self.by_cloud.get(&cloud).copied()
    }
}

impl std::fmt::Debug for Providers<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_list()
            .entries(self.by_cloud.keys())
            .finish()
    }
}

/// The clock the journal stamps events with: the binary's, or a fixed one with `--now`.
pub type Clock<'a> = &'a (dyn Fn() -> Timestamp + Send + Sync);

/// How an apply runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplySettings {
    /// The guards' limits.
    pub guards: GuardSettings,
    /// Actions in flight at once, per run.
    pub concurrency: usize,
    /// Stop cleanly after this many mutations (a canary run, or a test of resumption).
    pub stop_after: Option<usize>,
}

impl Default for ApplySettings {
    fn default() -> Self {
        ApplySettings {
            guards: GuardSettings::default(),
            concurrency: 4,
            stop_after: None,
        }
    }
}

/// Everything one apply needs.
#[derive(Clone, Copy)]
pub struct ApplyRun<'a> {
    /// The plan to carry out.
    pub plan: &'a Plan,
    /// SHA-256 of the plan file, or of the fresh plan's JSON.
    pub plan_digest: &'a str,
    /// The plan file, when one was given.
    pub plan_file: Option<&'a str>,
    /// The policy as it is now: protection is re-checked against it.
    pub policy: &'a Policy,
    /// The providers.
    pub providers: &'a Providers<'a>,
    /// Limits and concurrency.
    pub settings: &'a ApplySettings,
    /// This run's time (`--now`, else the clock), for the instant the plan judged.
    pub now: Timestamp,
    /// The clock when this run started, whatever `--now` says: the plan's real age.
    pub wall_clock: Timestamp,
    /// Stamps journal lines.
    pub clock: Clock<'a>,
    /// Who runs it.
    pub operator: &'a Operator,
}

/// Dry run or the real thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Read and show; change nothing.
    DryRun,
    /// Make the changes.
    Execute,
}

/// Where an action stands after a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// lapse made the change.
    Done,
    /// The live target already showed the change.
    AlreadyDone,
    /// The target no longer exists.
    Gone,
    /// A crash left an intent; the re-run found the change made.
    Reconciled,
    /// The target changed since the plan; skipped.
    Stale,
    /// A call or a read failed.
    Failed,
    /// Not reached: `--stop-after`, or the journal could not be written.
    NotStarted,
    /// Dry run: this call would be made.
    WouldChange,
}

impl Status {
    /// The kebab-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::AlreadyDone => "already-done",
            Status::Gone => "gone",
            Status::Reconciled => "reconciled",
            Status::Stale => "stale",
            Status::Failed => "failed",
            Status::NotStarted => "not-started",
            Status::WouldChange => "would-change",
        }
    }
}

impl From<ResultKind> for Status {
    fn from(result: ResultKind) -> Self {
        match result {
            ResultKind::Done => Status::Done,
            ResultKind::AlreadyDone => Status::AlreadyDone,
            ResultKind::Gone => Status::Gone,
            ResultKind::Reconciled => Status::Reconciled,
            ResultKind::Stale => Status::Stale,
            ResultKind::Failed => Status::Failed,
        }
    }
}

/// One action's line in the outcome table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    /// Its sequence number in the plan.
    pub sequence: usize,
    /// What it does.
    pub action: ActionKind,
    /// Its cloud.
    pub cloud: Cloud,
    /// Its scope.
    pub scope: ScopeId,
    /// The principal it changes.
    pub principal: String,
    /// The exact target (key id, grant id).
    pub target: String,
    /// Where it stands.
    pub status: Status,
    /// Whether the live state shows the change (`None`: not checked, as in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Why: the stale reason, the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The calls made, or that a dry run would make.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// Settled by an earlier run of the same plan and journal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub earlier: bool,
}

impl ActionReport {
    fn new(change: &PlannedChange, status: Status) -> Self {
        let action = &change.action;
        ActionReport {
            sequence: change.sequence,
            action: action.kind(),
            cloud: action.cloud(),
            scope: action.scope().clone(),
            principal: guards::principal_of(action).to_owned(),
            target: action.target_id().to_owned(),
            status,
            verified: None,
            message: None,
            calls: Vec::new(),
            earlier: false,
        }
    }

    /// True when the action succeeded and the live state shows it.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        matches!(
            self.status,
            Status::Done | Status::AlreadyDone | Status::Gone | Status::Reconciled
        ) && self.verified == Some(true)
    }
}

/// What a run did, per action, in plan order: the outcome table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Always [`APPLY_FORMAT`].
    pub format: &'static str,
    /// [`APPLY_VERSION`].
    pub version: u32,
    /// Apply or undo.
    pub command: JournalCommand,
    /// Dry run or execute.
    pub mode: Mode,
    /// The plan's digest.
    pub plan_digest: String,
    /// The journal written, when executing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// `--stop-after`, when it stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_after: Option<usize>,
    /// Per action.
    pub actions: Vec<ActionReport>,
}

impl ApplyReport {
    /// Counts per status.
    #[must_use]
    pub fn counts(&self) -> BTreeMap<Status, usize> {
        let mut counts = BTreeMap::new();
        for action in &self.actions {
            *counts.entry(action.status).or_default() += 1;
        }
        counts
    }

    /// True when every action succeeded and the live state shows each.
    #[must_use]
    pub fn all_verified(&self) -> bool {
        self.actions.iter().all(ActionReport::succeeded)
    }

    /// True when an action failed, or succeeded without the live state showing it.
    #[must_use]
    pub fn any_failed(&self) -> bool {
        self.actions.iter().any(|action| {
            action.status == Status::Failed
                || (matches!(
                    action.status,
                    Status::Done | Status::AlreadyDone | Status::Gone | Status::Reconciled
                ) && action.verified == Some(false))
        })
    }
}

/// Reads live the scopes the plan changes, one snapshot request per cloud, merged: what the
/// account guard, the caller's protection and the strip-all guard are judged on.
///
/// # Errors
/// [`Error::Refused`] when the plan names a cloud this run has no provider for.
pub async fn read_live(plan: &Plan, providers: &Providers<'_>) -> Result<Snapshot> {
    let mut by_cloud: BTreeMap<Cloud, Vec<String>> = BTreeMap::new();
    for change in &plan.actions {
        let scopes = by_cloud.entry(change.action.cloud()).or_default();
        let scope = change.action.scope().as_str().to_owned();
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let mut missing = Vec::new();
    let mut snapshots = Vec::new();
    for (cloud, scopes) in by_cloud {
        match providers.get(cloud) {
            Some(provider) => {
                snapshots.push(provider.snapshot(&SnapshotRequest { scopes }).await.snapshot);
            }
            None => missing.push(Refusal {
                guard: Guard::Provider,
                message: format!(
                    "the plan changes {cloud} scopes and this lapse has no {cloud} provider: use a build with the `{cloud}` feature"
                ),
            }),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Refused {
            refusals: Refusals(missing),
        });
    }
    Ok(Snapshot::merge(snapshots))
}

/// Runs every guard.
///
/// # Errors
/// [`Error::Refused`] with every refusal.
pub fn check(run: &ApplyRun<'_>, live: &Snapshot) -> Result<()> {
    let refusals = guards::check(&guards::GuardInput {
        plan: run.plan,
        policy: run.policy,
        live,
        settings: &run.settings.guards,
        now: run.now,
        wall_clock: run.wall_clock,
    });
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused {
            refusals: Refusals(refusals),
        })
    }
}

/// Runs `work` on every item, at most `limit` at a time for each cloud, the clouds side by
/// side: the bound is per provider, so one cloud's throttling never holds up another's.
async fn per_provider<T, R, F, Fut>(
    items: impl IntoIterator<Item = T>,
    cloud_of: impl Fn(&T) -> Cloud,
    limit: usize,
    work: F,
) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let mut by_cloud: BTreeMap<Cloud, Vec<T>> = BTreeMap::new();
    for item in items {
        by_cloud.entry(cloud_of(&item)).or_default().push(item);
    }
    let work = &work;
    let clouds = by_cloud.into_values().map(|items| {
        futures_util::stream::iter(items)
            .map(work)
            .buffer_unordered(limit.max(1))
            .collect::<Vec<R>>()
    });
    futures_util::future::join_all(clouds)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Reads every target and says what would happen, changing nothing and writing nothing.
/// Actions a journal already settled are shown as such.
pub async fn dry_run(run: &ApplyRun<'_>, journal: Option<&JournalContents>) -> ApplyReport {
    let empty = JournalContents::default();
    let history = journal.unwrap_or(&empty);
    let actions = per_provider(
        &run.plan.actions,
        |change| change.action.cloud(),
        run.settings.concurrency,
        |change| async move {
            if let Some(report) = settled(change, history.actions.get(&change.sequence)) {
                return report;
            }
            let Some(provider) = run.providers.get(change.action.cloud()) else {
                return failed(change, "no provider for this cloud".to_owned());
            };
            let live = match provider.read_target(&change.action).await {
                Ok(live) => live,
                Err(error) => return failed(change, error.to_string()),
            };
            let mut report = match stale::judge(
                &change.action,
                change.principal_unique_id.as_deref(),
                &live,
                run.plan.snapshot.taken_at,
            ) {
                stale::Verdict::Proceed => {
                    let mut report = ActionReport::new(change, Status::WouldChange);
                    report.calls = provider.describe_apply(&change.action, &live);
                    report
                }
                stale::Verdict::AlreadyDone => ActionReport::new(change, Status::AlreadyDone),
                stale::Verdict::Gone => ActionReport::new(change, Status::Gone),
                stale::Verdict::Stale(reason) => {
                    let mut report = ActionReport::new(change, Status::Stale);
                    report.message = Some(reason);
                    report
                }
            };
            if matches!(report.status, Status::AlreadyDone | Status::Gone) {
                report.verified = Some(live.revoked || !live.present);
            }
            report
        },
    )
    .await;
    finish(run, Mode::DryRun, None, None, actions)
}

fn finish(
    run: &ApplyRun<'_>,
    mode: Mode,
    journal: Option<&Journal>,
    stopped_after: Option<usize>,
    mut actions: Vec<ActionReport>,
) -> ApplyReport {
    actions.sort_by_key(|action| action.sequence);
    ApplyReport {
        format: APPLY_FORMAT,
        version: APPLY_VERSION,
        command: JournalCommand::Apply,
        mode,
        plan_digest: run.plan_digest.to_owned(),
        journal: journal.map(|journal| journal.path().display().to_string()),
        stopped_after,
        actions,
    }
}

fn failed(change: &PlannedChange, message: String) -> ActionReport {
    let mut report = ActionReport::new(change, Status::Failed);
    report.message = Some(message);
    report
}

/// The report of an action the journal settled, if it did.
fn settled(change: &PlannedChange, history: Option<&ActionHistory>) -> Option<ActionReport> {
    let history = history?;
    let outcome = history.outcome.as_ref()?;
    if !outcome.result.is_final() || history.interrupted() {
        return None;
    }
    let mut report = ActionReport::new(change, outcome.result.into());
    report.earlier = true;
    report.message.clone_from(&outcome.message);
    report.calls = history
        .intents
        .last()
        .map(|intent| intent.calls.clone())
        .unwrap_or_default();
    if outcome.result.expects_revoked() {
        report.verified = history.verify.as_ref().map(|verify| verify.verified);
    }
    Some(report)
}

/// What the journal says about each finding behind an action, with the approver and ticket of
/// the declaration or exception that decided it where the policy names them.
fn planned(plan: &Plan, policy: &Policy, change: &PlannedChange) -> Planned {
    let findings = change
        .finding_ids
        .iter()
        .filter_map(|id| plan.findings.iter().find(|finding| &finding.id == id))
        .map(|finding| {
            let decider = &finding.evidence.decided_by;
            let (approved_by, ticket) = match decider {
                Decider::Declared { origin } => policy
                    .grants
                    .iter()
                    .find(|declared| &declared.origin == origin)
                    .map_or((None, None), |declared| {
                        (declared.approved_by.clone(), declared.ticket.clone())
                    }),
                Decider::Exception { origin } => policy
                    .exceptions
                    .iter()
                    .find(|exception| &exception.origin == origin)
                    .map_or((None, None), |exception| {
                        (
                            Some(exception.approved_by.clone()),
                            exception.ticket.clone(),
                        )
                    }),
                _ => (None, None),
            };
            FindingEvidence {
                id: finding.id.clone(),
                kind: finding.kind,
                severity: finding.severity,
                summary: finding.evidence.summary.clone(),
                decided_by: decider.label(),
                origin: decider.origin().cloned(),
                owner: finding.subject.owner.clone(),
                approved_by,
                ticket,
            }
        })
        .collect();
    Planned {
        target_digest: change.target_digest.clone(),
        reversible: change.reversible,
        findings,
        action: change.action.clone(),
    }
}

/// What one execute run shares between its actions.
struct Execution<'a, 'j> {
    run: &'a ApplyRun<'a>,
    journal: Mutex<&'j mut Journal>,
    history: BTreeMap<usize, ActionHistory>,
    mutations: AtomicUsize,
    stopped: AtomicBool,
    halted: AtomicBool,
    journal_error: Mutex<Option<Error>>,
}

impl Execution<'_, '_> {
    fn now(&self) -> Timestamp {
        (self.run.clock)()
    }

    /// Appends a line; on failure the run halts (no further call may be made without its
    /// intent on disk) and the first error is kept for the caller.
    fn write(&self, record: Record) -> bool {
        let result = match self.journal.lock() {
            Ok(mut journal) => journal.append(record),
            Err(_) => return false,
        };
        match result {
            Ok(()) => true,
            Err(error) => {
                self.halted.store(true, Ordering::SeqCst);
                if let Ok(mut slot) = self.journal_error.lock()
                    && slot.is_none()
                {
                    *slot = Some(error);
                }
                false
            }
        }
    }

    /// Takes a mutation slot under `--stop-after`; false when the run is to stop.
    fn may_mutate(&self) -> bool {
        if self.halted.load(Ordering::SeqCst) {
            return false;
        }
        match self.run.settings.stop_after {
            None => true,
            Some(limit) => {
                let taken = self.mutations.fetch_add(1, Ordering::SeqCst);
                if taken < limit {
                    true
                } else {
                    self.stopped.store(true, Ordering::SeqCst);
                    false
                }
            }
        }
    }

    /// Re-reads a target after its change and journals whether the change shows.
    async fn verify(
        &self,
        provider: &dyn Provider,
        change: &PlannedChange,
    ) -> (bool, Option<String>) {
        let (verified, after, message) = match provider.read_target(&change.action).await {
            Ok(after) => {
                let verified = after.revoked || !after.present;
                let message = (!verified)
                    .then(|| "the live state does not show the change after the call".to_owned());
                (verified, Some(after), message)
            }
            Err(error) => (false, None, Some(format!("cannot verify: {error}"))),
        };
        self.write(Record::Verify(Verify {
            sequence: change.sequence,
            at: self.now(),
            verified,
            after,
            message: message.clone(),
        }));
        (verified, message)
    }

    /// Journals an outcome. One with no intent before it (no call was made) carries the
    /// planned action and the reading that decided it, so the journal alone tells the story.
    fn outcome(
        &self,
        change: &PlannedChange,
        result: ResultKind,
        message: Option<String>,
        without_intent: Option<Option<&TargetState>>,
    ) -> bool {
        self.write(Record::Outcome(Outcome {
            sequence: change.sequence,
            at: self.now(),
            result,
            message,
            planned: without_intent.map(|_| planned(self.run.plan, self.run.policy, change)),
            before: without_intent.flatten().cloned(),
        }))
    }

    async fn process(&self, change: &PlannedChange) -> ActionReport {
        let history = self.history.get(&change.sequence);
        if let Some(mut report) = settled(change, history) {
            // Settled, but its verification is missing or failed: read again (never act again).
            if report.status != Status::Stale
                && report.verified != Some(true)
                && let Some(provider) = self.run.providers.get(change.action.cloud())
            {
                let (verified, message) = self.verify(provider, change).await;
                report.verified = Some(verified);
                if message.is_some() {
                    report.message = message;
                }
            }
            return report;
        }
        if self.halted.load(Ordering::SeqCst) {
            return ActionReport::new(change, Status::NotStarted);
        }
        let Some(provider) = self.run.providers.get(change.action.cloud()) else {
            return failed(change, "no provider for this cloud".to_owned());
        };
        let interrupted = history.is_some_and(ActionHistory::interrupted);
        // lapse's own earlier call on the target, whose outcome is not known to have missed:
        // cut short by a crash, or answered with a failure it may not have suffered.
        let called_before =
            interrupted || history.is_some_and(ActionHistory::call_failed_on_an_unchanged_target);
        let live = match provider.read_target(&change.action).await {
            Ok(live) => live,
            Err(error) => {
                let message = format!("cannot read the target: {error}");
                // After an interrupted call, no outcome is written: the next run must still
                // see the intent open and ask the live state whether the call went through.
                if !interrupted {
                    self.outcome(
                        change,
                        ResultKind::Failed,
                        Some(message.clone()),
                        Some(None),
                    );
                }
                return failed(change, message);
            }
        };
        // An intent without an outcome: the call may or may not have reached the cloud. The
        // live state decides; a change that shows is not made twice. A principal re-created
        // since shows nothing of lapse's doing: the stale check below says so.
        let recreated =
            stale::recreated(&change.action, change.principal_unique_id.as_deref(), &live)
                .is_some();
        if called_before && !recreated && (live.revoked || !live.present) {
            let mut report = ActionReport::new(change, Status::Reconciled);
            report.message = Some(if interrupted {
                "an interrupted run's change was found made".to_owned()
            } else {
                "an earlier call reported a failure, and its change was found made: the target showed it not made just before that call".to_owned()
            });
            report.verified = Some(true);
            if self.outcome(change, ResultKind::Reconciled, report.message.clone(), None) {
                self.write(Record::Verify(Verify {
                    sequence: change.sequence,
                    at: self.now(),
                    verified: true,
                    after: Some(live),
                    message: None,
                }));
            }
            return report;
        }
        let verdict = stale::judge(
            &change.action,
            change.principal_unique_id.as_deref(),
            &live,
            self.run.plan.snapshot.taken_at,
        );
        let (result, message) = match verdict {
            stale::Verdict::Proceed => return self.act(provider, change, live, history).await,
            stale::Verdict::AlreadyDone => (ResultKind::AlreadyDone, None),
            stale::Verdict::Gone => (ResultKind::Gone, None),
            stale::Verdict::Stale(reason) => (ResultKind::Stale, Some(reason)),
        };
        let mut report = ActionReport::new(change, result.into());
        report.message.clone_from(&message);
        if !self.outcome(change, result, message, Some(Some(&live))) {
            return report;
        }
        if result.expects_revoked() {
            // The reading just made is the verification: no call was made in between.
            report.verified = Some(true);
            self.write(Record::Verify(Verify {
                sequence: change.sequence,
                at: self.now(),
                verified: true,
                after: Some(live),
                message: None,
            }));
        }
        report
    }

    async fn act(
        &self,
        provider: &dyn Provider,
        change: &PlannedChange,
        live: TargetState,
        history: Option<&ActionHistory>,
    ) -> ActionReport {
        if !self.may_mutate() {
            return ActionReport::new(change, Status::NotStarted);
        }
        let calls = provider.describe_apply(&change.action, &live);
        // What this run read just before its call: the change not made yet. A reading after
        // the call that shows it made is then this run's doing, whatever the call answered.
        let unchanged_before = live.present && !live.revoked;
        let intent = Intent {
            sequence: change.sequence,
            at: self.now(),
            attempt: history.map_or(1, ActionHistory::next_attempt),
            planned: planned(self.run.plan, self.run.policy, change),
            before: live,
            calls: calls.clone(),
        };
        if !self.write(Record::Intent(intent)) {
            return failed(
                change,
                "the journal could not be written; no call was made".to_owned(),
            );
        }
        let (result, message) = match provider.apply(&change.action).await {
            Ok(ActionOutcome::Done) => (ResultKind::Done, None),
            // The provider's retry found the change made: its first attempt landed and the
            // answer was lost. Nobody else made it between this run's reading and its call.
            Ok(ActionOutcome::AlreadyDone) if unchanged_before => (
                ResultKind::Done,
                Some("made by this run: the provider found the change already made, but this run read the target unchanged just before its call (the call's first answer was lost)".to_owned()),
            ),
            Ok(ActionOutcome::AlreadyDone) => (ResultKind::AlreadyDone, None),
            Err(error) if unchanged_before => {
                return self.after_failed_call(provider, change, calls, &error).await;
            }
            Err(error) => (ResultKind::Failed, Some(error.to_string())),
        };
        let mut report = ActionReport::new(change, result.into());
        report.calls = calls;
        report.message.clone_from(&message);
        if !self.outcome(change, result, message, None) {
            return report;
        }
        if result.expects_revoked() {
            let (verified, message) = self.verify(provider, change).await;
            report.verified = Some(verified);
            if message.is_some() {
                report.message = message;
            }
        }
        report
    }
}

impl Execution<'_, '_> {
    /// A call that answered with a failure may still have landed (a response lost on the way
    /// back, a retry that failed after the first attempt succeeded): the target is read again.
    /// Showing the change, it is this run's (`done`, verified by that reading, so undo restores
    /// it and the evidence credits lapse). Not showing it, the call failed. Unreadable, nobody
    /// can tell: no outcome is written, and the next run settles it from the live state as
    /// after a crash.
    async fn after_failed_call(
        &self,
        provider: &dyn Provider,
        change: &PlannedChange,
        calls: Vec<String>,
        error: &lapse_sdk::ProviderError,
    ) -> ActionReport {
        let mut report = ActionReport::new(change, Status::Failed);
        report.calls = calls;
        match provider.read_target(&change.action).await {
            Ok(after)
                if (after.revoked || !after.present)
                    && stale::recreated(
                        &change.action,
                        change.principal_unique_id.as_deref(),
                        &after,
                    )
                    .is_none() =>
            {
                let message = format!(
                    "made by this run: the call answered \"{error}\", but the target read just after shows the change, and it did not just before the call (the answer was lost)"
                );
                report.status = Status::Done;
                report.message = Some(message.clone());
                if self.outcome(change, ResultKind::Done, Some(message), None) {
                    report.verified = Some(true);
                    self.write(Record::Verify(Verify {
                        sequence: change.sequence,
                        at: self.now(),
                        verified: true,
                        after: Some(after),
                        message: None,
                    }));
                }
            }
            Ok(_) => {
                report.message = Some(error.to_string());
                self.outcome(change, ResultKind::Failed, Some(error.to_string()), None);
            }
            Err(read) => {
                report.message = Some(format!(
                    "{error}; the target could not be read again to tell whether the call landed ({read}): run the same apply again, which settles it from the live state"
                ));
            }
        }
        report
    }
}

/// Carries out the plan, journaling every step; resumes from what `journal` already holds.
/// Guards must have passed ([`check`]) on a fresh live reading.
///
/// # Errors
/// [`Error::JournalPlanMismatch`] when the journal belongs to another plan; a journal write
/// failure after the run stopped (the report of what was done is lost only for the actions in
/// flight, whose intents are on disk).
pub async fn execute(run: &ApplyRun<'_>, journal: &mut Journal) -> Result<ApplyReport> {
    if let Some(found) = journal.contents().plan_digest()
        && found != run.plan_digest
    {
        return Err(Error::JournalPlanMismatch {
            path: journal.path().to_owned(),
            found: found.to_owned(),
            expected: run.plan_digest.to_owned(),
        });
    }
    journal.append(Record::Begin(Begin {
        at: (run.clock)(),
        command: JournalCommand::Apply,
        plan_digest: run.plan_digest.to_owned(),
        plan_file: run.plan_file.map(str::to_owned),
        plan_now: run.plan.now,
        plan_made: run.plan.made.clone(),
        plan_policy_digest: run.plan.policy.digest.clone(),
        policy_digest: run.policy.digest.clone(),
        snapshot_digest: run.plan.snapshot.digest.clone(),
        operator: run.operator.clone(),
        lapse_version: env!("CARGO_PKG_VERSION").to_owned(),
        actions: run.plan.actions.len(),
        max_revocations: run.settings.guards.max_revocations,
        stop_after: run.settings.stop_after,
    }))?;
    let history = journal.contents().actions.clone();
    let execution = Execution {
        run,
        journal: Mutex::new(journal),
        history,
        mutations: AtomicUsize::new(0),
        stopped: AtomicBool::new(false),
        halted: AtomicBool::new(false),
        journal_error: Mutex::new(None),
    };
    // Reversible first, as a rule and not only as an order: no irreversible action starts
    // before every reversible one has ended, whatever the concurrency.
    let (reversible, irreversible): (Vec<&PlannedChange>, Vec<&PlannedChange>) = run
        .plan
        .actions
        .iter()
        .partition(|change| change.action.kind().is_reversible());
    let mut actions = Vec::with_capacity(run.plan.actions.len());
    for phase in [reversible, irreversible] {
        actions.extend(
            per_provider(
                phase,
                |change| change.action.cloud(),
                run.settings.concurrency,
                |change| execution.process(change),
            )
            .await,
        );
    }
    let stopped = execution.stopped.load(Ordering::SeqCst);
    let journal_error = execution.journal_error.into_inner().ok().flatten();
    let journal = execution
        .journal
        .into_inner()
        .map_err(|_| Error::JournalIo {
            path: std::path::PathBuf::new(),
            source: std::io::Error::other("the journal writer panicked"),
        })?;
    if let Some(error) = journal_error {
        return Err(error);
    }
    let report = finish(
        run,
        Mode::Execute,
        Some(journal),
        if stopped {
            run.settings.stop_after
        } else {
            None
        },
        actions,
    );
    journal.append(Record::End(end_record(
        (run.clock)(),
        JournalCommand::Apply,
        &report,
    )))?;
    Ok(report)
}

fn end_record(at: Timestamp, command: JournalCommand, report: &ApplyReport) -> End {
    let mut results: BTreeMap<String, usize> = BTreeMap::new();
    for action in &report.actions {
        let key = if action.earlier {
            "settled-earlier"
        } else {
            action.status.as_str()
        };
        *results.entry(key.to_owned()).or_default() += 1;
    }
    End {
        at,
        command,
        results,
        unverified: report
            .actions
            .iter()
            .filter(|action| action.verified == Some(false))
            .count(),
    }
}

/// The credentials lapse itself deactivated in a journal, with when: the start of their grace
/// period before deletion. A key found already inactive is not lapse's doing and is left out.
#[must_use]
pub fn deactivations(contents: &JournalContents) -> Vec<(lapse_sdk::Credential, Timestamp)> {
    let mut found = Vec::new();
    for history in contents.actions.values() {
        let Some(outcome) = &history.outcome else {
            continue;
        };
        if !matches!(outcome.result, ResultKind::Done | ResultKind::Reconciled)
            || history
                .verify
                .as_ref()
                .is_none_or(|verify| !verify.verified)
        {
            continue;
        }
        if let Some(Planned {
            action: Action::DeactivateCredential { credential },
            ..
        }) = history.planned()
        {
            found.push((credential.clone(), outcome.at));
        }
    }
    found
}

/// The credentials lapse restored by undo in a journal: their grace period ends.
#[must_use]
pub fn reactivations(contents: &JournalContents) -> Vec<lapse_sdk::CredentialId> {
    contents
        .actions
        .values()
        .filter(|history| {
            history.undo.as_ref().is_some_and(|undo| {
                undo.verified && matches!(undo.result, journal::UndoResult::Done)
            })
        })
        .filter_map(|history| match history.planned() {
            Some(Planned {
                action: Action::DeactivateCredential { credential },
                ..
            }) => Some(credential.id.clone()),
            _ => None,
        })
        .collect()
}

/// Counts of the plan's actions by scope, for the confirmation prompt.
#[must_use]
pub fn scopes_changed(plan: &Plan) -> Vec<(ScopeId, usize)> {
    let mut counts: HashMap<&ScopeId, usize> = HashMap::new();
    for change in &plan.actions {
        *counts.entry(change.action.scope()).or_default() += 1;
    }
    let mut scopes: Vec<(ScopeId, usize)> = counts
        .into_iter()
        .map(|(scope, count)| (scope.clone(), count))
        .collect();
    scopes.sort();
    scopes
}

#[cfg(test)]
mod tests;
