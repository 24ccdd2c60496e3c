//! The apply engine, its guards and its evidence, against an in-memory provider: every step of
//! the journal, resumption from each crash point, stale targets, failed verification, undo.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lapse_sdk::{
    Action, ActionKind, ActionOutcome, BoxFuture, Cloud, Credential, CredentialKind,
    CredentialStatus, Grant, GrantKind, Principal, PrincipalKind, Provider, ProviderError,
    ProviderErrorKind, ScopeKind, ScopeStatus, Snapshot, SnapshotRequest, SnapshotResponse,
    TargetState, Timestamp, Usage, Via,
};

use super::*;
use crate::diff::Memory;
use crate::policy::from_sources;

const NOW: &str = "2026-11-20T06:00:00Z";
const ACCOUNT: &str = "111122223333";

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("instant")
}

fn days_ago(days: i64) -> Timestamp {
    at(NOW).plus_seconds(-days * 86_400)
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind}/{name}")
}

/// Runs a future on this thread, parking until it is woken.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => return value,
            std::task::Poll::Pending => std::thread::park(),
        }
    }
}

fn principal(name: &str, kind: PrincipalKind) -> Principal {
    let kind_name = if kind == PrincipalKind::Role {
        "role"
    } else {
        "user"
    };
    Principal {
        unique_id: None,
        id: arn(kind_name, name).into(),
        cloud: Cloud::Aws,
        scope: format!("aws:{ACCOUNT}").into(),
        kind,
        native_type: None,
        display_name: Some(name.to_owned()),
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
        id: format!("{principal}|policy|{entitlement}").into(),
        cloud: Cloud::Aws,
        scope: format!("aws:{ACCOUNT}").into(),
        principal: principal.into(),
        entitlement: entitlement.to_owned(),
        entitlement_id: None,
        resource: ACCOUNT.to_owned(),
        kind: GrantKind::ManagedPolicy,
        via: Via::Direct,
        created_at: None,
        expires_at: None,
        expiry_source: None,
        condition: None,
        privileged: false,
    }
}

fn key(id: &str, user: &str) -> Credential {
    Credential {
        id: id.into(),
        principal: arn("user", user).into(),
        cloud: Cloud::Aws,
        scope: format!("aws:{ACCOUNT}").into(),
        kind: CredentialKind::AwsAccessKey,
        display_name: None,
        created_at: Some(days_ago(100)),
        expires_at: None,
        last_used: Usage::Never,
        status: CredentialStatus::Active,
        cloud_managed: false,
    }
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

/// An account read whole, as `lapse` running as role `lapse`: batch has two idle keys, ops a
/// standing admin and a declared read-only, break-glass a protected admin.
fn snapshot() -> Snapshot {
    let mut snapshot = Snapshot::empty(at(NOW));
    snapshot.scopes.push(ScopeStatus {
        caller_identities: Vec::new(),
        id: format!("aws:{ACCOUNT}").into(),
        cloud: Cloud::Aws,
        kind: ScopeKind::Account,
        taken_at: at(NOW),
        complete: true,
        caller: Some(arn("role", "lapse")),
        errors: Vec::new(),
    });
    snapshot.principals = vec![
        principal("batch", PrincipalKind::Workload),
        principal("ops", PrincipalKind::Human),
        principal("break-glass", PrincipalKind::Human),
        principal("lapse", PrincipalKind::Role),
    ];
    snapshot.credentials = vec![key("AKIAONE", "batch"), key("AKIATWO", "batch")];
    snapshot.grants = vec![
        grant(&arn("user", "ops"), ADMIN),
        grant(&arn("user", "ops"), READ_ONLY),
        grant(&arn("user", "break-glass"), ADMIN),
        grant(
            &arn("role", "lapse"),
            "arn:aws:iam::aws:policy/IAMFullAccess",
        ),
    ];
    snapshot
}

const POLICY: &str = "scopes:
  aws: [{account: \"111122223333\"}]
defaults: {credential_max_idle: 30d}
protect:
  - principal: arn:aws:iam::111122223333:user/break-glass
grants:
  - principal: arn:aws:iam::111122223333:user/ops
    entitlement: arn:aws:iam::aws:policy/ReadOnlyAccess
    approved_by: alice@example.com
    ticket: SEC-1
";

fn policy(text: &str) -> Policy {
    from_sources(&[(PathBuf::from("policy.yaml"), format!("version: 1\n{text}"))])
        .expect("valid policy")
}

fn make_plan(snapshot: &Snapshot, policy: &Policy) -> Plan {
    crate::plan::plan(
        snapshot,
        "sha256:snapshot",
        policy,
        &Memory::default(),
        at(NOW),
    )
}

/// An in-memory cloud: targets by id, and every mutating call counted.
#[derive(Default)]
struct Fake {
    snapshot: Mutex<Option<Snapshot>>,
    targets: Mutex<HashMap<String, TargetState>>,
    calls: Mutex<Vec<String>>,
    /// Targets whose call fails.
    failing: Mutex<Vec<String>>,
    /// Targets whose call says done but changes nothing.
    lying: Mutex<Vec<String>>,
    /// Targets whose call lands but whose answer is lost: the change is made and the call
    /// fails (a timeout after the write, a retry that then errs).
    landing_then_failing: Mutex<Vec<String>>,
    /// Targets whose call lands, then retries after a lost answer and finds it done.
    landing_then_already_done: Mutex<Vec<String>>,
    /// Targets that cannot be read once a call was made on them.
    unreadable_after_call: Mutex<Vec<String>>,
}

impl Fake {
    fn for_plan(plan: &Plan, snapshot: Snapshot) -> Fake {
        let fake = Fake::default();
        *fake.snapshot.lock().expect("lock") = Some(snapshot);
        for change in &plan.actions {
            let state = match &change.action {
                Action::DeactivateCredential { credential } => TargetState {
                    present: true,
                    revoked: false,
                    status: Some(CredentialStatus::Active),
                    last_used: credential.last_used,
                    restore: serde_json::json!({"status": "Active"}),
                    ..TargetState::default()
                },
                _ => TargetState {
                    present: true,
                    ..TargetState::default()
                },
            };
            fake.set(change.action.target_id(), state);
        }
        fake
    }

    fn set(&self, id: &str, state: TargetState) {
        self.targets
            .lock()
            .expect("lock")
            .insert(id.to_owned(), state);
    }

    fn state(&self, id: &str) -> TargetState {
        self.targets
            .lock()
            .expect("lock")
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

impl Provider for Fake {
    fn cloud(&self) -> Cloud {
        Cloud::Aws
    }

    fn snapshot<'a>(&'a self, _request: &'a SnapshotRequest) -> BoxFuture<'a, SnapshotResponse> {
        Box::pin(async move {
            SnapshotResponse {
                snapshot: self
                    .snapshot
                    .lock()
                    .expect("lock")
                    .clone()
                    .unwrap_or_else(|| Snapshot::empty(at(NOW))),
            }
        })
    }

    fn read_target<'a>(
        &'a self,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<TargetState, ProviderError>> {
        Box::pin(async move {
            let id = action.target_id().to_owned();
            let called = self.calls().contains(&format!("apply {id}"));
            if called
                && self
                    .unreadable_after_call
                    .lock()
                    .expect("lock")
                    .contains(&id)
            {
                return Err(ProviderError {
                    kind: ProviderErrorKind::TimedOut,
                    operation: "fake:Read".to_owned(),
                    message: "no answer".to_owned(),
                    missing_permission: None,
                });
            }
            Ok(self.state(&id))
        })
    }

    fn apply<'a>(
        &'a self,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move {
            let id = action.target_id().to_owned();
            self.calls.lock().expect("lock").push(format!("apply {id}"));
            if self.failing.lock().expect("lock").contains(&id) {
                return Err(ProviderError {
                    kind: ProviderErrorKind::Throttled,
                    operation: "fake:Apply".to_owned(),
                    message: "slow down".to_owned(),
                    missing_permission: None,
                });
            }
            if self.lying.lock().expect("lock").contains(&id) {
                return Ok(ActionOutcome::Done);
            }
            let lost = self
                .landing_then_failing
                .lock()
                .expect("lock")
                .contains(&id);
            let retried = self
                .landing_then_already_done
                .lock()
                .expect("lock")
                .contains(&id);
            let mut targets = self.targets.lock().expect("lock");
            let state = targets.entry(id).or_default();
            if state.revoked {
                return Ok(ActionOutcome::AlreadyDone);
            }
            state.revoked = true;
            if state.status.is_some() {
                state.status = Some(CredentialStatus::Inactive);
            } else {
                state.present = false;
            }
            if lost {
                return Err(ProviderError {
                    kind: ProviderErrorKind::TimedOut,
                    operation: "fake:Apply".to_owned(),
                    message: "no answer within 30s".to_owned(),
                    missing_permission: None,
                });
            }
            if retried {
                return Ok(ActionOutcome::AlreadyDone);
            }
            Ok(ActionOutcome::Done)
        })
    }

    fn undo<'a>(
        &'a self,
        action: &'a Action,
        before: &'a TargetState,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move {
            let id = action.target_id().to_owned();
            self.calls.lock().expect("lock").push(format!("undo {id}"));
            self.set(&id, before.clone());
            Ok(ActionOutcome::Done)
        })
    }

    fn permissions(&self, _kind: ActionKind) -> &'static [&'static str] {
        &[]
    }
}

/// One test's world: plan, policy, fake cloud, a journal in a temporary folder.
struct World {
    plan: Plan,
    policy: Policy,
    fake: Fake,
    settings: ApplySettings,
    folder: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let snapshot = snapshot();
        let policy = policy(POLICY);
        let plan = make_plan(&snapshot, &policy);
        let fake = Fake::for_plan(&plan, snapshot);
        World {
            plan,
            policy,
            fake,
            settings: ApplySettings {
                concurrency: 1,
                ..ApplySettings::default()
            },
            folder: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.folder.path().join("journal.jsonl")
    }

    fn with_run<T>(&self, body: impl FnOnce(&ApplyRun<'_>) -> T) -> T {
        let providers = Providers::new().with(&self.fake);
        let clock = || at(NOW);
        let operator = Operator::default();
        let run = ApplyRun {
            plan: &self.plan,
            plan_digest: "sha256:plan",
            plan_file: Some("plan.json"),
            policy: &self.policy,
            providers: &providers,
            settings: &self.settings,
            now: at(NOW),
            wall_clock: at(NOW),
            clock: &clock,
            operator: &operator,
        };
        body(&run)
    }

    fn execute(&self) -> ApplyReport {
        let mut journal = Journal::open(&self.journal_path()).expect("journal");
        self.with_run(|run| {
            let live = block_on(read_live(run.plan, run.providers)).expect("live");
            check(run, &live).expect("guards pass");
            block_on(execute(run, &mut journal)).expect("execute")
        })
    }

    fn contents(&self) -> JournalContents {
        journal::read(&self.journal_path()).expect("journal")
    }

    fn refusals(&self, live: &Snapshot) -> Vec<Refusal> {
        guards::check(&guards::GuardInput {
            plan: &self.plan,
            policy: &self.policy,
            live,
            settings: &self.settings.guards,
            now: at(NOW),
            wall_clock: at(NOW),
        })
    }
}

fn target_ids(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|change| change.action.target_id().to_owned())
        .collect()
}

#[test]
fn the_fixture_plans_two_idle_keys_and_one_standing_admin() {
    let world = World::new();
    assert_eq!(
        target_ids(&world.plan),
        [
            "AKIAONE".to_owned(),
            "AKIATWO".to_owned(),
            format!("{}|policy|{ADMIN}", arn("user", "ops"))
        ]
    );
}

#[test]
fn execute_journals_each_step_and_verifies_each_action() {
    let world = World::new();
    let report = world.execute();
    assert!(report.all_verified(), "{report:#?}");
    assert_eq!(world.fake.calls().len(), 3);
    let contents = world.contents();
    assert_eq!(contents.runs.len(), 1);
    assert!(contents.runs[0].end.is_some());
    for history in contents.actions.values() {
        assert_eq!(history.intents.len(), 1);
        assert_eq!(
            history.outcome.as_ref().map(|outcome| outcome.result),
            Some(ResultKind::Done)
        );
        assert!(
            history
                .verify
                .as_ref()
                .is_some_and(|verify| verify.verified)
        );
        assert!(
            history
                .before()
                .is_some_and(|before| before.present && !before.revoked)
        );
    }
    // The declared grant behind nothing, the approver where the policy declares one: here the
    // standing admin was decided by lapse itself.
    let planned = contents.actions[&3].planned().expect("planned");
    assert_eq!(planned.findings.len(), 1);
    assert_eq!(planned.findings[0].decided_by, "lapse");

    // Again: settled, no call.
    let again = world.execute();
    assert!(again.all_verified());
    assert!(again.actions.iter().all(|action| action.earlier));
    assert_eq!(world.fake.calls().len(), 3);
    assert_eq!(world.contents().runs.len(), 2);
}

#[test]
fn a_dry_run_reads_and_shows_calls_but_calls_and_writes_nothing() {
    let world = World::new();
    let report = world.with_run(|run| block_on(dry_run(run, None)));
    assert!(world.fake.calls().is_empty());
    assert!(!world.journal_path().exists());
    assert!(
        report
            .actions
            .iter()
            .all(|action| action.status == Status::WouldChange && !action.calls.is_empty())
    );
}

#[test]
fn stop_after_makes_that_many_changes_and_a_rerun_makes_the_rest_once() {
    for limit in 0..3 {
        let mut world = World::new();
        world.settings.stop_after = Some(limit);
        let report = world.execute();
        assert_eq!(report.stopped_after, Some(limit));
        assert_eq!(world.fake.calls().len(), limit);
        assert_eq!(
            report
                .counts()
                .get(&Status::NotStarted)
                .copied()
                .unwrap_or(0),
            3 - limit
        );
        world.settings.stop_after = None;
        let report = world.execute();
        assert!(report.all_verified(), "{report:#?}");
        assert_eq!(world.fake.calls().len(), 3, "each change made once");
    }
}

/// Writes a run that stopped between the intent and the outcome of action 1.
fn crash_after_intent(world: &World) {
    let mut journal = Journal::open(&world.journal_path()).expect("journal");
    let change = &world.plan.actions[0];
    journal
        .append(Record::Begin(Begin {
            at: at(NOW),
            command: JournalCommand::Apply,
            plan_digest: "sha256:plan".to_owned(),
            plan_file: None,
            plan_now: world.plan.now,
            plan_made: None,
            plan_policy_digest: world.plan.policy.digest.clone(),
            policy_digest: world.policy.digest.clone(),
            snapshot_digest: world.plan.snapshot.digest.clone(),
            operator: Operator::default(),
            lapse_version: "0.1.0".to_owned(),
            actions: 3,
            max_revocations: 10,
            stop_after: None,
        }))
        .expect("begin");
    journal
        .append(Record::Intent(Intent {
            sequence: change.sequence,
            at: at(NOW),
            attempt: 1,
            planned: planned(&world.plan, &world.policy, change),
            before: world.fake.state(change.action.target_id()),
            calls: Vec::new(),
        }))
        .expect("intent");
}

#[test]
fn an_intent_whose_call_reached_the_cloud_is_reconciled_without_a_call() {
    let world = World::new();
    crash_after_intent(&world);
    // The call had gone through before the crash.
    let mut state = world.fake.state("AKIAONE");
    state.revoked = true;
    state.status = Some(CredentialStatus::Inactive);
    world.fake.set("AKIAONE", state);
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Reconciled);
    assert!(report.all_verified());
    assert!(!world.fake.calls().contains(&"apply AKIAONE".to_owned()));
    assert_eq!(world.fake.calls().len(), 2);
}

#[test]
fn an_intent_whose_call_never_left_is_made_as_a_second_attempt() {
    let world = World::new();
    crash_after_intent(&world);
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Done);
    assert_eq!(world.fake.calls().len(), 3);
    assert_eq!(
        world.contents().actions[&1]
            .intents
            .iter()
            .map(|intent| intent.attempt)
            .collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn a_key_used_since_the_plan_is_stale_and_left_alone() {
    let world = World::new();
    let mut state = world.fake.state("AKIATWO");
    state.last_used = Usage::At(at("2026-11-20T07:00:00Z"));
    world.fake.set("AKIATWO", state);
    let report = world.execute();
    assert_eq!(report.actions[1].status, Status::Stale);
    assert!(!report.all_verified());
    assert!(!report.any_failed());
    assert!(!world.fake.calls().contains(&"apply AKIATWO".to_owned()));
    let contents = world.contents();
    let outcome = contents.actions[&2].outcome.as_ref().expect("outcome");
    assert_eq!(outcome.result, ResultKind::Stale);
    assert!(
        outcome.planned.is_some() && outcome.before.is_some(),
        "stands alone"
    );
    // Stale is final: a re-run does not act on it either.
    world.execute();
    assert!(!world.fake.calls().contains(&"apply AKIATWO".to_owned()));
}

/// A world whose `batch` user carries the immutable id the cloud gave it.
fn world_with_unique_ids() -> World {
    let mut snapshot = snapshot();
    for principal in &mut snapshot.principals {
        principal.unique_id = Some(format!(
            "AIDA{}",
            principal
                .display_name
                .as_deref()
                .unwrap_or_default()
                .to_uppercase()
        ));
    }
    let policy = policy(POLICY);
    let plan = make_plan(&snapshot, &policy);
    let fake = Fake::for_plan(&plan, snapshot);
    World {
        plan,
        policy,
        fake,
        settings: ApplySettings {
            concurrency: 1,
            ..ApplySettings::default()
        },
        folder: tempfile::tempdir().expect("tempdir"),
    }
}

#[test]
fn the_plan_carries_each_targets_immutable_principal_id_under_its_digest() {
    let mut world = world_with_unique_ids();
    let ids: Vec<Option<&str>> = world
        .plan
        .actions
        .iter()
        .map(|change| change.principal_unique_id.as_deref())
        .collect();
    assert_eq!(ids, [Some("AIDABATCH"), Some("AIDABATCH"), Some("AIDAOPS")]);
    let json = serde_json::to_value(&world.plan).expect("json");
    assert_eq!(json["actions"][0]["principal_unique_id"], "AIDABATCH");
    assert!(world.refusals(&snapshot()).is_empty());
    // Pointing the plan at another principal's id is an edit like any other.
    world.plan.actions[0].principal_unique_id = Some("AIDANEWCOMER".to_owned());
    let refusals = world.refusals(&snapshot());
    assert_eq!(
        messages(&refusals, Guard::PlanIntegrity).len(),
        1,
        "{refusals:#?}"
    );
    // Without ids, nothing is carried and the digest is the record's alone, as before.
    let plain = World::new();
    assert!(
        plain
            .plan
            .actions
            .iter()
            .all(|change| change.principal_unique_id.is_none()
                && change.target_digest == crate::plan::target_digest(&change.action, None))
    );
}

#[test]
fn a_principal_deleted_and_re_created_under_the_same_name_is_stale_not_a_target() {
    let world = world_with_unique_ids();
    // `batch` was deleted and re-created since the plan: same ARN, another immutable id, and
    // (as the fake has it) a key under the same id.
    let mut state = world.fake.state("AKIAONE");
    state.unique_id = Some("AIDABATCHAGAIN".to_owned());
    world.fake.set("AKIAONE", state);
    let mut same = world.fake.state("AKIATWO");
    same.unique_id = Some("AIDABATCH".to_owned());
    world.fake.set("AKIATWO", same);
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Stale, "{report:#?}");
    assert!(
        report.actions[0]
            .message
            .as_deref()
            .is_some_and(|message| message.contains("deleted and re-created")),
        "{report:#?}"
    );
    assert_eq!(report.actions[1].status, Status::Done);
    assert!(!world.fake.calls().contains(&"apply AKIAONE".to_owned()));
    let dry = world.with_run(|run| block_on(dry_run(run, None)));
    assert_eq!(dry.actions[0].status, Status::Stale);
}

#[test]
fn a_change_the_live_state_does_not_show_is_a_failure() {
    let world = World::new();
    world
        .fake
        .lying
        .lock()
        .expect("lock")
        .push("AKIAONE".to_owned());
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Done);
    assert_eq!(report.actions[0].verified, Some(false));
    assert!(report.any_failed());
}

#[test]
fn a_failed_call_is_retried_by_the_next_run() {
    let world = World::new();
    world
        .fake
        .failing
        .lock()
        .expect("lock")
        .push("AKIAONE".to_owned());
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Failed);
    assert!(
        report.actions[0]
            .message
            .as_deref()
            .is_some_and(|message| message.contains("slow down"))
    );
    world.fake.failing.lock().expect("lock").clear();
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Done);
    assert!(report.all_verified());
}

fn undo_run<'a>(
    providers: &'a Providers<'a>,
    clock: Clock<'a>,
    operator: &'a Operator,
) -> UndoRun<'a> {
    UndoRun {
        providers,
        clock,
        operator,
        only: None,
        concurrency: 1,
    }
}

/// The journal says this run made the change: outcome `done`, verified, undone by undo, and
/// credited to lapse in the evidence and the grace periods.
fn assert_made_by_lapse(world: &World, sequence: usize) {
    let contents = world.contents();
    let history = &contents.actions[&sequence];
    let outcome = history.outcome.as_ref().expect("outcome");
    assert_eq!(outcome.result, ResultKind::Done, "{outcome:?}");
    assert!(
        outcome
            .message
            .as_deref()
            .is_some_and(|message| message.contains("made by this run")),
        "{outcome:?}"
    );
    assert!(
        history
            .verify
            .as_ref()
            .is_some_and(|verify| verify.verified)
    );
    let evidence = evidence::build(&contents, Path::new("journal.jsonl")).expect("evidence");
    assert_eq!(
        evidence.revocations[sequence - 1].result,
        Some(ResultKind::Done)
    );
    let target = world.plan.actions[sequence - 1]
        .action
        .target_id()
        .to_owned();
    assert!(
        deactivations(&contents)
            .iter()
            .any(|(credential, _)| credential.id.as_str() == target),
        "the grace period starts: lapse deactivated it"
    );
    let providers = Providers::new().with(&world.fake);
    let clock = || at(NOW);
    let operator = Operator::default();
    let run = undo_run(&providers, &clock, &operator);
    let mut journal = Journal::open(&world.journal_path()).expect("journal");
    let report = block_on(undo_execute(&mut journal, &run)).expect("undo");
    assert!(
        report
            .actions
            .iter()
            .any(|action| action.target == target && action.status == Status::Done),
        "{report:#?}"
    );
    let state = world.fake.state(&target);
    assert!(state.present && !state.revoked, "undo restored {target}");
}

#[test]
fn a_write_that_lands_but_answers_an_error_is_done_by_this_run() {
    let world = World::new();
    world
        .fake
        .landing_then_failing
        .lock()
        .expect("lock")
        .push("AKIAONE".to_owned());
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Done, "{report:#?}");
    assert_eq!(report.actions[0].verified, Some(true));
    assert!(report.all_verified());
    assert_made_by_lapse(&world, 1);
    assert_eq!(
        world
            .fake
            .calls()
            .iter()
            .filter(|call| *call == "apply AKIAONE")
            .count(),
        1,
        "made once"
    );
}

#[test]
fn a_retry_that_finds_its_own_write_made_is_done_not_already_done() {
    let world = World::new();
    world
        .fake
        .landing_then_already_done
        .lock()
        .expect("lock")
        .push("AKIAONE".to_owned());
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Done, "{report:#?}");
    assert_made_by_lapse(&world, 1);
}

#[test]
fn a_target_showing_the_change_before_any_call_is_already_done_and_not_lapses() {
    // Someone else made the change before lapse came: no call, and nothing credited to lapse.
    let world = World::new();
    let mut state = world.fake.state("AKIAONE");
    state.revoked = true;
    state.status = Some(CredentialStatus::Inactive);
    world.fake.set("AKIAONE", state);
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::AlreadyDone);
    assert!(
        deactivations(&world.contents())
            .iter()
            .all(|(credential, _)| credential.id.as_str() != "AKIAONE")
    );
}

#[test]
fn a_failed_call_whose_target_cannot_be_read_again_is_settled_by_the_next_run() {
    let world = World::new();
    world
        .fake
        .landing_then_failing
        .lock()
        .expect("lock")
        .push("AKIAONE".to_owned());
    world
        .fake
        .unreadable_after_call
        .lock()
        .expect("lock")
        .push("AKIAONE".to_owned());
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Failed);
    assert!(report.any_failed());
    // Nobody can tell whether the call landed: the intent stays open, as after a crash.
    assert!(world.contents().actions[&1].interrupted());
    world
        .fake
        .unreadable_after_call
        .lock()
        .expect("lock")
        .clear();
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Reconciled, "{report:#?}");
    assert!(report.all_verified());
    assert_eq!(
        world
            .fake
            .calls()
            .iter()
            .filter(|call| *call == "apply AKIAONE")
            .count(),
        1,
        "not made twice"
    );
    let contents = world.contents();
    assert!(
        deactivations(&contents)
            .iter()
            .any(|(credential, _)| credential.id.as_str() == "AKIAONE")
    );
}

#[test]
fn a_failed_call_whose_change_shows_later_is_reconciled_as_lapses_own() {
    let world = World::new();
    world
        .fake
        .failing
        .lock()
        .expect("lock")
        .push("AKIAONE".to_owned());
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Failed);
    // The write reached the cloud after all and shows on the next run (an eventually
    // consistent read): lapse's own call, not someone else's.
    world.fake.failing.lock().expect("lock").clear();
    let mut state = world.fake.state("AKIAONE");
    state.revoked = true;
    state.status = Some(CredentialStatus::Inactive);
    world.fake.set("AKIAONE", state);
    let report = world.execute();
    assert_eq!(report.actions[0].status, Status::Reconciled, "{report:#?}");
    assert_eq!(
        world
            .fake
            .calls()
            .iter()
            .filter(|call| *call == "apply AKIAONE")
            .count(),
        1
    );
    let contents = world.contents();
    let providers = Providers::new().with(&world.fake);
    let clock = || at(NOW);
    let operator = Operator::default();
    let run = undo_run(&providers, &clock, &operator);
    let dry = block_on(undo_dry_run(&contents, &world.journal_path(), &run)).expect("undo");
    assert!(
        dry.actions.iter().any(|action| action.target == "AKIAONE"),
        "undo can restore it: {dry:#?}"
    );
}

#[test]
fn a_journal_of_another_plan_is_refused() {
    let world = World::new();
    world.execute();
    let mut journal = Journal::open(&world.journal_path()).expect("journal");
    let providers = Providers::new().with(&world.fake);
    let clock = || at(NOW);
    let operator = Operator::default();
    let run = ApplyRun {
        plan: &world.plan,
        plan_digest: "sha256:another",
        plan_file: None,
        policy: &world.policy,
        providers: &providers,
        settings: &world.settings,
        now: at(NOW),
        wall_clock: at(NOW),
        clock: &clock,
        operator: &operator,
    };
    let error = block_on(execute(&run, &mut journal)).expect_err("another plan");
    assert!(
        matches!(error, Error::JournalPlanMismatch { .. }),
        "{error}"
    );
}

#[test]
fn undo_restores_what_lapse_changed_once() {
    let world = World::new();
    world.execute();
    let providers = Providers::new().with(&world.fake);
    let clock = || at(NOW);
    let operator = Operator::default();
    let run = UndoRun {
        providers: &providers,
        clock: &clock,
        operator: &operator,
        only: None,
        concurrency: 1,
    };
    let dry =
        block_on(undo_dry_run(&world.contents(), &world.journal_path(), &run)).expect("dry undo");
    assert!(
        dry.actions
            .iter()
            .all(|action| action.status == Status::WouldChange)
    );
    let mut journal = Journal::open(&world.journal_path()).expect("journal");
    let report = block_on(undo_execute(&mut journal, &run)).expect("undo");
    assert!(report.all_verified(), "{report:#?}");
    for id in target_ids(&world.plan) {
        let state = world.fake.state(&id);
        assert!(state.present && !state.revoked, "{id} restored");
    }
    assert_eq!(reactivations(journal.contents()).len(), 2);
    let again = block_on(undo_execute(&mut journal, &run)).expect("undo again");
    assert!(again.actions.iter().all(|action| action.earlier));
    assert_eq!(
        world
            .fake
            .calls()
            .iter()
            .filter(|call| call.starts_with("undo"))
            .count(),
        3
    );
}

#[test]
fn deactivations_are_lapses_own_verified_changes() {
    let world = World::new();
    let mut state = world.fake.state("AKIATWO");
    state.revoked = true;
    world.fake.set("AKIATWO", state);
    world.execute();
    let found: Vec<String> = deactivations(&world.contents())
        .into_iter()
        .map(|(credential, _)| credential.id.0)
        .collect();
    assert_eq!(
        found,
        ["AKIAONE"],
        "a key found inactive is not lapse's doing"
    );
}

// Guards.

fn messages(refusals: &[Refusal], guard: Guard) -> Vec<&str> {
    refusals
        .iter()
        .filter(|refusal| refusal.guard == guard)
        .map(|refusal| refusal.message.as_str())
        .collect()
}

#[test]
fn a_plan_from_the_current_policy_passes_every_guard() {
    let world = World::new();
    assert_eq!(world.refusals(&snapshot()), []);
}

#[test]
fn the_cap_refuses_and_says_how_to_raise_it_and_zero_means_none() {
    let mut world = World::new();
    world.settings.guards.max_revocations = 2;
    let refusals = world.refusals(&snapshot());
    let cap = messages(&refusals, Guard::Cap);
    assert_eq!(cap.len(), 1);
    assert!(cap[0].contains("--max-revocations 3"), "{}", cap[0]);
    world.settings.guards.max_revocations = 0;
    assert_eq!(messages(&world.refusals(&snapshot()), Guard::Cap).len(), 1);
    world.settings.guards.max_revocations = 3;
    assert!(messages(&world.refusals(&snapshot()), Guard::Cap).is_empty());
}

#[test]
fn an_old_plan_or_one_for_a_future_instant_is_refused() {
    let mut world = World::new();
    world.plan.now = at(NOW).plus_seconds(-25 * 3_600);
    let refusals = world.refusals(&snapshot());
    assert!(
        messages(&refusals, Guard::PlanAge)
            .first()
            .is_some_and(|message| message.contains("--max-plan-age")),
        "{refusals:?}"
    );
    world.plan.now = at(NOW).plus_seconds(3_600);
    assert_eq!(
        messages(&world.refusals(&snapshot()), Guard::PlanAge).len(),
        1
    );
    world.plan.now = at(NOW).plus_seconds(-23 * 3_600);
    assert!(messages(&world.refusals(&snapshot()), Guard::PlanAge).is_empty());
}

#[test]
fn a_fixed_now_does_not_make_an_old_plan_young() {
    // `apply --now` gives the instant the plan judged: the plan-age guard still measures the
    // plan's real age, by the clock, from when it was made.
    let mut world = World::new();
    let made = |days_ago: i64| crate::plan::Provenance {
        at: at(NOW).plus_seconds(-days_ago * 86_400),
        by: None,
        host: None,
        lapse_version: "0.1.0".to_owned(),
    };
    let refusals_at = |world: &World, now: Timestamp, wall_clock: Timestamp| {
        guards::check(&guards::GuardInput {
            plan: &world.plan,
            policy: &world.policy,
            live: &snapshot(),
            settings: &world.settings.guards,
            now,
            wall_clock,
        })
    };
    // Made three days ago, judged as of three days ago, replayed with that same --now.
    world.plan.now = at(NOW).plus_seconds(-3 * 86_400);
    world.plan.made = Some(made(3));
    let refusals = refusals_at(&world, world.plan.now, at(NOW));
    let age = messages(&refusals, Guard::PlanAge);
    assert_eq!(age.len(), 1, "{refusals:#?}");
    assert!(
        age[0].contains("by the clock") && age[0].contains("--now"),
        "{age:?}"
    );
    // Made an hour ago for a future instant (a test of time), applied with that --now: fine.
    world.plan.now = at(NOW).plus_seconds(40 * 86_400);
    world.plan.made = Some(made(0));
    assert!(
        messages(
            &refusals_at(&world, world.plan.now, at(NOW)),
            Guard::PlanAge
        )
        .is_empty()
    );
    // A plan that does not say when it was made is judged by the instant it judged.
    world.plan.made = None;
    assert_eq!(
        messages(
            &refusals_at(&world, world.plan.now, at(NOW)),
            Guard::PlanAge
        )
        .len(),
        1
    );
    world.plan.now = at(NOW).plus_seconds(-3 * 86_400);
    assert_eq!(
        messages(
            &refusals_at(&world, world.plan.now, at(NOW)),
            Guard::PlanAge
        )
        .len(),
        1
    );
}

#[test]
fn an_edited_record_is_refused_as_an_edited_plan() {
    let mut world = World::new();
    if let Action::DeactivateCredential { credential } = &mut world.plan.actions[0].action {
        credential.principal = arn("user", "someone-else").into();
    }
    let refusals = world.refusals(&snapshot());
    assert_eq!(
        messages(&refusals, Guard::PlanIntegrity).len(),
        1,
        "{refusals:?}"
    );
}

fn inject(plan: &mut Plan, action: Action) {
    let sequence = plan.actions.len() + 1;
    plan.actions.push(crate::plan::PlannedChange {
        sequence,
        finding_ids: Vec::new(),
        reversible: action.kind().is_reversible(),
        target_digest: crate::plan::target_digest(&action, None),
        principal_unique_id: None,
        action,
    });
}

#[test]
fn protected_principals_injected_into_a_plan_are_refused() {
    let mut world = World::new();
    inject(
        &mut world.plan,
        Action::RevokeGrant {
            grant: grant(&arn("user", "break-glass"), ADMIN),
        },
    );
    inject(
        &mut world.plan,
        Action::RevokeGrant {
            grant: grant(
                &arn("role", "lapse"),
                "arn:aws:iam::aws:policy/IAMFullAccess",
            ),
        },
    );
    inject(
        &mut world.plan,
        Action::RevokeGrant {
            grant: grant(
                &arn(
                    "role",
                    "aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
                ),
                ADMIN,
            ),
        },
    );
    let mut managed = key("AKIAMANAGED", "ops");
    managed.cloud_managed = true;
    inject(
        &mut world.plan,
        Action::DeactivateCredential {
            credential: managed,
        },
    );
    let refusals = world.refusals(&snapshot());
    let protected = messages(&refusals, Guard::Protected);
    assert_eq!(protected.len(), 4, "{refusals:#?}");
    assert!(protected[0].contains("protected by policy (policy.yaml:"));
    assert!(protected[1].contains("lapse's own caller identity"));
    assert!(protected[2].contains("AWS service-linked role"));
    assert!(protected[3].contains("managed by the cloud provider"));
}

#[test]
fn every_form_of_lapses_own_identity_is_refused_as_a_target() {
    let mut world = World::new();
    // lapse holds its access through a group here, and signs with a key of another user: what
    // a provider reports as the caller's other identities.
    let mut live = snapshot();
    live.scopes[0].caller_identities = vec![arn("group", "lapse-readers"), arn("user", "batch")];
    inject(
        &mut world.plan,
        Action::RevokeGrant {
            grant: grant(&arn("group", "lapse-readers"), READ_ONLY),
        },
    );
    let refusals = world.refusals(&live);
    let protected = messages(&refusals, Guard::Protected);
    // The two idle keys of `batch` (its credentials are protected with it) and the group.
    assert_eq!(protected.len(), 3, "{refusals:#?}");
    for message in protected {
        assert!(
            message.contains("lapse's own identity: holds lapse's own access (caller arn:aws:iam::111122223333:role/lapse)"),
            "{message}"
        );
    }
    // Without the live reading's identities, the plan as made passes.
    let refusals = world.refusals(&snapshot());
    assert!(
        messages(&refusals, Guard::Protected).is_empty(),
        "{refusals:#?}"
    );
}

#[test]
fn a_grant_protected_by_a_grant_level_entry_is_refused() {
    let mut world = World::new();
    world.policy = policy(
        "scopes:
  aws: [{account: \"111122223333\"}]
protect:
  - entitlement: arn:aws:iam::aws:policy/AdministratorAccess
    principal: arn:aws:iam::111122223333:user/ops
",
    );
    let refusals = world.refusals(&snapshot());
    assert!(
        messages(&refusals, Guard::Protected)
            .iter()
            .any(|message| message.contains("grant protected by policy")),
        "{refusals:#?}"
    );
}

#[test]
fn scopes_the_policy_does_not_name_or_that_cannot_be_read_whole_are_refused() {
    let mut world = World::new();
    world.policy = policy(&POLICY.replace("111122223333\"}]", "999988887777\"}]"));
    let refusals = world.refusals(&snapshot());
    assert!(
        messages(&refusals, Guard::Account)
            .first()
            .is_some_and(|message| message.contains("do not name")),
        "{refusals:?}"
    );
    let world = World::new();
    let mut live = snapshot();
    live.scopes[0].complete = false;
    assert_eq!(messages(&world.refusals(&live), Guard::Account).len(), 1);
    let mut live = snapshot();
    live.scopes.clear();
    assert_eq!(messages(&world.refusals(&live), Guard::Account).len(), 1);
}

#[test]
fn a_plan_leaving_a_principal_or_a_scope_with_no_access_is_refused_unless_allowed() {
    let mut world = World::new();
    inject(
        &mut world.plan,
        Action::RevokeGrant {
            grant: grant(&arn("user", "ops"), READ_ONLY),
        },
    );
    let refusals = world.refusals(&snapshot());
    let strips = messages(&refusals, Guard::StripsAll);
    assert_eq!(strips.len(), 1, "{refusals:#?}");
    assert!(strips[0].contains("user/ops"));
    // The whole scope.
    let mut live = snapshot();
    live.grants
        .retain(|grant| grant.principal.as_str() == arn("user", "ops"));
    let strips = world.refusals(&live);
    assert!(
        messages(&strips, Guard::StripsAll)
            .iter()
            .any(|message| message.contains("all 2 grant(s) of aws:111122223333")),
        "{strips:#?}"
    );
    world.settings.guards.allow_strip_all = true;
    assert!(messages(&world.refusals(&snapshot()), Guard::StripsAll).is_empty());
}

#[test]
fn a_grant_inherited_through_a_group_survives_only_with_its_membership() {
    let mut world = World::new();
    let mut live = snapshot();
    let mut membership = grant(&arn("user", "ops"), &arn("group", "admins"));
    membership.id = format!("{}|member|{}", arn("user", "ops"), arn("group", "admins")).into();
    membership.kind = GrantKind::GroupMembership;
    let mut inherited = grant(&arn("user", "ops"), ADMIN);
    inherited.id = "inherited".into();
    inherited.via = Via::Group(arn("group", "admins").into());
    live.grants.push(membership.clone());
    live.grants.push(inherited);
    inject(
        &mut world.plan,
        Action::RevokeGrant {
            grant: grant(&arn("user", "ops"), READ_ONLY),
        },
    );
    assert!(
        messages(&world.refusals(&live), Guard::StripsAll).is_empty(),
        "the membership keeps access"
    );
    inject(&mut world.plan, Action::RevokeGrant { grant: membership });
    assert_eq!(messages(&world.refusals(&live), Guard::StripsAll).len(), 1);
}

#[test]
fn an_empty_policy_is_refused_unless_allowed() {
    let mut world = World::new();
    world.policy = policy("scopes:\n  aws: [{account: \"111122223333\"}]\n");
    assert_eq!(
        messages(&world.refusals(&snapshot()), Guard::EmptyPolicy).len(),
        1
    );
    world.settings.guards.allow_empty_policy = true;
    assert!(messages(&world.refusals(&snapshot()), Guard::EmptyPolicy).is_empty());
}

#[test]
fn a_deletion_needs_the_policys_opt_in() {
    let mut world = World::new();
    let mut retired = key("AKIAOLD", "batch");
    retired.status = CredentialStatus::Inactive;
    inject(
        &mut world.plan,
        Action::DeleteCredential {
            credential: retired,
        },
    );
    let refusals = world.refusals(&snapshot());
    assert_eq!(
        messages(&refusals, Guard::Irreversible).len(),
        1,
        "{refusals:#?}"
    );
    world.policy = policy(&format!(
        "{POLICY}rules:\n  - id: keys\n    match: {{credential: aws-access-key}}\n    max_idle: 30d\n    delete_after: 14d\n"
    ));
    assert!(messages(&world.refusals(&snapshot()), Guard::Irreversible).is_empty());
}

#[test]
fn the_last_owner_of_an_azure_resource_is_never_revoked() {
    let mut world = World::new();
    let mut owner = grant("00000000-aaaa", "Owner");
    owner.cloud = Cloud::Azure;
    owner.scope = "azure:/subscriptions/s1".into();
    owner.resource = "/subscriptions/s1".to_owned();
    owner.kind = GrantKind::RoleAssignment;
    let mut live = snapshot();
    live.grants.push(owner.clone());
    inject(&mut world.plan, Action::RevokeGrant { grant: owner });
    let refusals = world.refusals(&live);
    assert_eq!(
        messages(&refusals, Guard::LastHolder).len(),
        1,
        "{refusals:#?}"
    );
}

#[test]
fn the_last_holder_guard_counts_holders_by_role_id_not_by_name() {
    const OWNER_ID: &str = "/subscriptions/s1/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
    let azure = |principal: &str, name: &str, role_id: &str| {
        let mut owner = grant(principal, name);
        owner.cloud = Cloud::Azure;
        owner.scope = "azure:/subscriptions/s1".into();
        owner.resource = "/subscriptions/s1".to_owned();
        owner.kind = GrantKind::RoleAssignment;
        owner.entitlement_id = Some(role_id.to_owned());
        owner
    };
    let revoked = azure("00000000-aaaa", "Owner", OWNER_ID);
    let refused = |other: Grant| {
        let mut world = World::new();
        let mut live = snapshot();
        live.grants.push(revoked.clone());
        live.grants.push(other);
        inject(
            &mut world.plan,
            Action::RevokeGrant {
                grant: revoked.clone(),
            },
        );
        messages(&world.refusals(&live), Guard::LastHolder).len()
    };
    // Another Owner whose role name could not be read (it shows as its id) remains: fine.
    assert_eq!(
        refused(azure(
            "00000000-bbbb",
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            OWNER_ID
        )),
        0
    );
    // A custom role shown as "Owner" is no Owner: the real last one is kept.
    assert_eq!(
        refused(azure(
            "00000000-cccc",
            "Owner",
            "/subscriptions/s1/providers/Microsoft.Authorization/roleDefinitions/0b5e8c1a-1111-4222-8333-944455556666"
        )),
        1
    );
}

#[test]
fn scopes_are_named_per_cloud() {
    let policy = policy(
        "scopes:
  aws: [{account: \"111122223333\"}]
  azure: [{tenant: t1, subscriptions: [\"s1\"]}]
  gcp: [{project: acme-prod}]
rules: []
",
    );
    let named = |id: &str| guards::scope_is_named(&policy, &lapse_sdk::ScopeId::from(id));
    assert!(named("aws:111122223333"));
    assert!(!named("aws:999988887777"));
    assert!(named("azure:/subscriptions/s1"));
    assert!(!named("azure:/subscriptions/s2"));
    assert!(named("gcp:projects/acme-prod"));
    assert!(!named("gcp:projects/other"));
}

// Evidence.

#[test]
fn evidence_lists_each_revocation_with_its_finding_state_and_verification() {
    let world = World::new();
    world.execute();
    let contents = world.contents();
    let evidence = evidence::build(&contents, Path::new("journal.jsonl")).expect("evidence");
    assert_eq!(evidence.format, "lapse-evidence");
    assert_eq!(evidence.revocations.len(), 3);
    assert_eq!(evidence.runs.len(), 1);
    for revocation in &evidence.revocations {
        assert_eq!(revocation.result, Some(ResultKind::Done));
        assert_eq!(revocation.verified, Some(true));
        assert!(revocation.before.is_some() && revocation.after.is_some());
        assert!(!revocation.findings.is_empty());
    }
    let json: serde_json::Value =
        serde_json::from_str(&evidence::render_json(&evidence).expect("json")).expect("parse");
    assert_eq!(json["version"], 1);
    let markdown = evidence::render_markdown(&evidence);
    assert!(
        markdown.contains("| 1 | deactivate-credential |"),
        "{markdown}"
    );
    assert!(markdown.contains("credential-idle"), "{markdown}");
}

#[test]
fn evidence_markdown_cannot_be_steered_by_names() {
    let world = World::new();
    world.execute();
    let mut evidence =
        evidence::build(&world.contents(), Path::new("journal.jsonl")).expect("evidence");
    evidence.revocations[0].principal = "@security-team | <b>x</b>\nrow".to_owned();
    let markdown = evidence::render_markdown(&evidence);
    assert!(!markdown.contains("@security-team"), "{markdown}");
    assert!(!markdown.contains("<b>"), "{markdown}");
    assert!(markdown.contains("\\| &lt;b&gt;"), "{markdown}");
}

#[test]
fn a_plan_made_with_another_policy_is_refused() {
    let mut world = World::new();
    world.policy = policy(&format!(
        "{POLICY}owners:\n  - {{principal: '*', owner: sre}}\n"
    ));
    let refusals = world.refusals(&snapshot());
    let changed = messages(&refusals, Guard::PolicyChanged);
    assert_eq!(changed.len(), 1, "{refusals:#?}");
    assert!(changed[0].contains("plan again"));
}
